"""Output writers: the one table of formats (table.py) and a module per family of them.

Writers depend on the build's products through a narrow interface (inputs.py) and write
through a workspace (writer.py); nothing here imports cairn.build or cairn.assemble.
"""
