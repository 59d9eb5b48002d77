# shellcheck shell=sh disable=SC3043,SC2034 # busybox ash has local; PROVIDER and HTTP_DATA are
# read by /usr/bin/metadata and http.sh, which shellcheck does not see from here
# Cairn's metadata: the network providers, one function each (net_NAME). Sourced by
# /usr/bin/metadata after http.sh and lib.sh. A provider returns 1 when its service is not
# there (nothing answered, or the answer is not that service's); else it sets PROVIDER,
# writes what the service says into $CONFIG (LinuxKit's file names: hostname,
# ssh/authorized_keys, instance_id, local_ipv4, ...), the user data into $WORK/userdata
# when there is some, and returns 0. What a provider asks for beyond its probe is
# optional: a missing answer leaves its file out.
#
# Every address can be replaced by $CAIRN_METADATA_URL (http://HOST:PORT): the tests run
# these providers against Cairn's emulated services on the host.

IMDS=${CAIRN_METADATA_URL:-http://169.254.169.254}

# put NAME: the last answer becomes $CONFIG/NAME (mode 0644), as the service gave it.
put() {
	cp "$HTTP_OUT" "$CONFIG/$1" && chmod 0644 "$CONFIG/$1"
}

# put_keys: standard input becomes $CONFIG/ssh/authorized_keys (0600), unless empty.
put_keys() {
	mkdir -p "$WORK/keys.d"
	cat >"$WORK/keys.d/keys"
	[ -s "$WORK/keys.d/keys" ] || return 0
	mkdir -p "$CONFIG/ssh" && chmod 0755 "$CONFIG/ssh" &&
		cp "$WORK/keys.d/keys" "$CONFIG/ssh/authorized_keys" &&
		chmod 0600 "$CONFIG/ssh/authorized_keys" &&
		say "ssh keys: $(grep -c . "$CONFIG/ssh/authorized_keys")"
}

# userdata: the last answer is the user data (an empty one is none).
userdata() {
	[ -s "$HTTP_OUT" ] && cp "$HTTP_OUT" "$WORK/userdata"
}

# --- AWS (IMDSv2, with IMDSv1 for services without tokens) and OpenStack (EC2's tree) ----

net_aws() {
	AWS_TOKEN=
	if http PUT "$IMDS/latest/api/token" "X-aws-ec2-metadata-token-ttl-seconds: 300"; then
		AWS_TOKEN=$(cat "$HTTP_OUT")
		if [ -z "$AWS_TOKEN" ]; then
			say "aws: the token service gave an empty token: not AWS's"
			return 1
		fi
	elif [ "$HTTP_STATUS" = 000 ]; then
		return 1
	else
		say "aws: no IMDSv2 token (HTTP $HTTP_STATUS): asking without one (IMDSv1)"
	fi
	aws_get meta-data/hostname || return 1
	PROVIDER=AWS
	put hostname
	ec2_files aws_get
}

aws_get() {
	if [ -n "$AWS_TOKEN" ]; then
		http GET "$IMDS/latest/$1" "X-aws-ec2-metadata-token: $AWS_TOKEN"
	else
		http GET "$IMDS/latest/$1"
	fi
}

net_openstack() {
	openstack_get meta-data/hostname || return 1
	PROVIDER=openstack
	put hostname
	ec2_files openstack_get
}

openstack_get() {
	http GET "$IMDS/latest/$1"
}

# ec2_files GET: LinuxKit's files from an EC2-style tree (after hostname), GET being the
# function that asks.
ec2_files() {
	local get="$1" pair
	for pair in public-ipv4:public_ipv4 local-ipv4:local_ipv4 \
		placement/availability-zone:availability_zone instance-type:instance_type \
		instance-id:instance_id local-hostname:local_hostname; do
		$get "meta-data/${pair%:*}" && put "${pair#*:}"
	done
	if $get meta-data/public-keys/0/openssh-key; then put_keys <"$HTTP_OUT"; fi
	if $get user-data; then userdata; fi
	return 0
}

# --- GCP ------------------------------------------------------------------------------------

# gcp_get PATH: GET under computeMetadata/v1; an answer without Metadata-Flavor: Google
# is not from GCP's metadata server, and counts as none.
gcp_get() {
	http GET "$IMDS/computeMetadata/v1/$1" "Metadata-Flavor: Google" || return 1
	if [ "$(http_header metadata-flavor)" != Google ]; then
		say "gcp: an answer without Metadata-Flavor: Google: not GCP's metadata server"
		HTTP_STATUS=000
		return 1
	fi
}

net_gcp() {
	local zone block key
	gcp_get instance/hostname || return 1
	PROVIDER=GCP
	put hostname
	gcp_get instance/id && put instance_id
	if gcp_get instance/zone; then
		zone=$(cat "$HTTP_OUT")
		printf '%s' "${zone##*/}" >"$CONFIG/zone"
	fi
	gcp_get instance/network-interfaces/0/ip && put local_ipv4
	# ssh-keys are USER:KEY lines (sshKeys is their old name); the project's count unless
	# the instance says block-project-ssh-keys.
	: >"$WORK/gcp-keys"
	for key in instance/attributes/ssh-keys instance/attributes/sshKeys; do
		if gcp_get "$key"; then gcp_keys >>"$WORK/gcp-keys"; fi
	done
	block=false
	if gcp_get instance/attributes/block-project-ssh-keys; then block=$(cat "$HTTP_OUT"); fi
	if [ "$block" = true ]; then
		say "gcp: block-project-ssh-keys: the project's keys are left out"
	else
		for key in project/attributes/ssh-keys project/attributes/sshKeys; do
			if gcp_get "$key"; then gcp_keys >>"$WORK/gcp-keys"; fi
		done
	fi
	put_keys <"$WORK/gcp-keys"
	if gcp_get instance/attributes/user-data; then userdata; fi
	return 0
}

# gcp_keys: the keys of the USER:KEY lines of the last answer.
gcp_keys() {
	sed -n 's/^[^:[:space:]][^:[:space:]]*:\(..*\)$/\1/p' "$HTTP_OUT"
}

# --- Azure ----------------------------------------------------------------------------------

AZURE_API=2021-02-01

net_azure() {
	local json="$WORK/azure.json" field
	http GET "$IMDS/metadata/instance?api-version=$AZURE_API" "Metadata: true" || return 1
	if ! jq -e '.compute.vmId' "$HTTP_OUT" >/dev/null 2>&1; then
		say "azure: the answer is not Azure's instance metadata"
		return 1
	fi
	PROVIDER=Azure
	cp "$HTTP_OUT" "$json"
	for field in 'hostname:.compute.osProfile.computerName // .compute.name' \
		'instance_id:.compute.vmId' 'location:.compute.location' 'vm_size:.compute.vmSize' \
		'local_ipv4:.network.interface[0].ipv4.ipAddress[0].privateIpAddress' \
		'public_ipv4:.network.interface[0].ipv4.ipAddress[0].publicIpAddress'; do
		jq -j "(${field#*:}) // empty" "$json" >"$HTTP_OUT" && [ -s "$HTTP_OUT" ] && put "${field%%:*}"
	done
	jq -r '.compute.publicKeys[]?.keyData // empty' "$json" | put_keys
	# userData is base64 in IMDS (customData is only on the provisioning CD)
	if jq -j '.compute.userData // empty' "$json" | base64 -d >"$HTTP_OUT" 2>/dev/null; then
		userdata
	else
		say "azure: userData is not base64: left out"
	fi
	azure_ready
	return 0
}

# azure_ready: tell the WireServer the machine is up, as Azure's guide for images without
# a provisioning agent says: without it the deployment waits and then reports a failure.
azure_ready() {
	local wire="${CAIRN_METADATA_URL:-http://168.63.129.16}" incarnation container instance
	set -- "x-ms-version: 2012-11-30" "x-ms-agent-name: cairn-metadata"
	if ! http GET "$wire/machine/?comp=goalstate" "$@"; then
		say "azure: no goal state from the WireServer (HTTP $HTTP_STATUS): not reported ready"
		return 0
	fi
	incarnation=$(xml_value Incarnation)
	container=$(xml_value ContainerId)
	instance=$(xml_value InstanceId)
	HTTP_DATA="<?xml version=\"1.0\" encoding=\"utf-8\"?>
<Health xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">
<GoalStateIncarnation>${incarnation:-1}</GoalStateIncarnation><Container><ContainerId>$container</ContainerId>
<RoleInstanceList><Role><InstanceId>$instance</InstanceId><Health><State>Ready</State></Health></Role></RoleInstanceList>
</Container></Health>"
	if http POST "$wire/machine?comp=health" "$@" "Content-Type: text/xml;charset=utf-8"; then
		say "azure: reported ready"
	else
		say "azure: the health report was refused (HTTP $HTTP_STATUS)"
	fi
	HTTP_DATA=
}

# xml_value TAG: the text of the first <TAG> of the last answer.
xml_value() {
	tr -d '\n' <"$HTTP_OUT" | sed -n "s:.*<$1>\\([^<]*\\)</$1>.*:\\1:p" | head -n 1
}

# --- Hetzner, DigitalOcean, Vultr -----------------------------------------------------------

net_hetzner() {
	local base="$IMDS/hetzner/v1"
	http GET "$base/metadata/hostname" || return 1
	PROVIDER=Hetzner
	put hostname
	http GET "$base/metadata/instance-id" && put instance_id
	http GET "$base/metadata/public-ipv4" && put public_ipv4
	if http GET "$base/metadata/public-keys"; then
		jq -r '.[]' "$HTTP_OUT" 2>/dev/null | put_keys
	fi
	if http GET "$base/userdata"; then userdata; fi
	return 0
}

net_digitalocean() {
	local base="$IMDS/metadata/v1" pair
	http GET "$base/" || return 1
	http GET "$base/hostname" || return 1
	PROVIDER=DigitalOcean
	put hostname
	for pair in interfaces/public/0/ipv4/address:public_ipv4 \
		interfaces/private/0/ipv4/address:private_ipv4 region:region id:id; do
		http GET "$base/${pair%:*}" && put "${pair#*:}"
	done
	if http GET "$base/public-keys"; then put_keys <"$HTTP_OUT"; fi
	if http GET "$base/user-data"; then userdata; fi
	return 0
}

net_vultr() {
	local base="$IMDS/v1" pair
	http GET "$base/" || return 1
	http GET "$base/hostname" || return 1
	PROVIDER=Vultr
	put hostname
	for pair in interfaces/0/ipv4/address:public_ipv4 interfaces/1/ipv4/address:private_ipv4 \
		interfaces/1/ipv4/netmask:private_netmask region/regioncode:region_code \
		instanceid:instance_id; do
		http GET "$base/${pair%:*}" && put "${pair#*:}"
	done
	if http GET "$base/public-keys"; then put_keys <"$HTTP_OUT"; fi
	if http GET "$IMDS/latest/user-data"; then userdata; fi
	return 0
}

# --- Scaleway -------------------------------------------------------------------------------

net_scaleway() {
	local base="${CAIRN_METADATA_URL:-http://169.254.42.42}" conf="$WORK/scaleway.conf" n i port pair
	http GET "$base/conf" || return 1
	cp "$HTTP_OUT" "$conf"
	grep -q '^ID=' "$conf" || return 1
	PROVIDER=Scaleway
	for pair in HOSTNAME:hostname ID:instance_id LOCATION_ZONE_ID:instance_location \
		PUBLIC_IP_ADDRESS:public_ip PRIVATE_IP:private_ip; do
		if grep -q "^${pair%:*}=" "$conf"; then
			sed -n "s/^${pair%:*}=//p" "$conf" | head -n 1 | tr -d '\n' >"$CONFIG/${pair#*:}"
			chmod 0644 "$CONFIG/${pair#*:}"
		fi
	done
	n=$(sed -n 's/^SSH_PUBLIC_KEYS=\([0-9]*\)$/\1/p' "$conf")
	i=0
	while [ "$i" -lt "${n:-0}" ]; do
		sed -n "s/^SSH_PUBLIC_KEYS_${i}_KEY=//p" "$conf" | sed "s/^'//; s/'\$//"
		i=$((i + 1))
	done | put_keys
	# The user data is served only to a privileged source port (below 1024).
	for port in 1001 1002 1003; do
		if HTTP_PORT=$port http GET "$base/user_data/cloud-init"; then
			userdata
			break
		fi
		[ "$HTTP_STATUS" = 000 ] || break
	done
	return 0
}

# --- Equinix Metal --------------------------------------------------------------------------

net_equinixmetal() {
	local base="${CAIRN_METADATA_URL:-https://metadata.platformequinix.com}" json="$WORK/equinix.json"
	http GET "$base/metadata" || return 1
	jq -e '.id' "$HTTP_OUT" >/dev/null 2>&1 || return 1
	PROVIDER=EquinixMetal
	cp "$HTTP_OUT" "$json"
	jq -j '.hostname // empty' "$json" >"$HTTP_OUT" && put hostname
	jq -j '.id // empty' "$json" >"$HTTP_OUT" && put instance_id
	jq -r '.ssh_keys[]? // empty' "$json" | put_keys
	if http GET "$base/userdata"; then
		case $(head -c 6 "$HTTP_OUT") in
		'#!ipxe') say "equinixmetal: the user data is an iPXE script: not used" ;;
		*) userdata ;;
		esac
	fi
	return 0
}
