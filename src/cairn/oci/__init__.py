"""OCI images: references, media types, the content store (cache) and the registry client."""
