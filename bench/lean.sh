#!/usr/bin/env bash
# bench/lean.sh: the lean shell-script peer of `nszone up` and `nszone down`,
# used by scripts/bench. What a careful administrator would write to give a
# namespace the internet and nothing more to think about: ip(8) for the
# namespace, link, addresses and routes, and a few iptables -A / ip6tables -A
# for NAT and forwarding, both families. No wall inside the zone, no
# per-zone chains, no iptables-restore: the cheap peer, nszone's floor.
#
#   bench/lean.sh up INDEX...     create zones ln<INDEX> (INDEX 1..16383)
#   bench/lean.sh down INDEX...   remove them; the last one out restores the host
#
# Zone ln<I>: namespace /run/netns/ln<I>; host link lsh-<I>, eth0 inside;
# 10.253.0.0/16 cut into /30s and fd6e:737a:7c:<I>::/64; default routes of
# both families via the host's end. Rules, per family, commented lsh-ln<I>:
#   nat POSTROUTING: -s ZONE-NET -o UPLINK MASQUERADE
#   FORWARD:         -i lsh-I -o UPLINK ACCEPT
#                    -i UPLINK -o lsh-I, conntrack ESTABLISHED,RELATED, ACCEPT
# The first up records ip_forward, IPv6 forwarding and the uplink's
# accept_ra and turns forwarding on; the last down puts them back.
#
# It refuses to run in the machine's initial network namespace: it is a
# benchmark peer, meant for the sandbox that scripts/bench runs in.
set -euo pipefail

die() { echo "bench/lean.sh: $*" >&2; exit 1; }

# shellcheck source=sandbox-check.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/sandbox-check.sh"
in_sandbox || die "refusing to run: this is (or cannot be told apart from) the machine's own network namespace"

STATE="${LSH_STATE:-${TMPDIR:-/tmp}/lsh-bench-state}"
UPLINK="${UPLINK:-$(ip -o route show default | awk '{print $5; exit}')}"
[[ -n $UPLINK ]] || die "no uplink (no default route); set UPLINK"

# net4 I: the zone's /30 as "NET GW ZONE".
net4() {
	local a=$((4 * $1))
	echo "10.253.$((a / 256)).$((a % 256))/30 10.253.$((a / 256)).$((a % 256 + 1)) 10.253.$((a / 256)).$((a % 256 + 2))"
}
net6() {
	local h
	h="$(printf %x "$1")"
	echo "fd6e:737a:7c:$h::/64 fd6e:737a:7c:$h::1 fd6e:737a:7c:$h::2"
}

# ---------- the host's side, once ----------

host_init() {
	[[ ! -f $STATE/host ]] || return 0
	mkdir -p "$STATE"
	{
		echo "ip_forward=$(sysctl -n net.ipv4.ip_forward)"
		echo "forwarding6=$(sysctl -n net.ipv6.conf.all.forwarding)"
		echo "accept_ra=$(sysctl -n "net.ipv6.conf.$UPLINK.accept_ra")"
	} >"$STATE/host.new"
	# accept_ra=2 first, so that forwarding does not cost the uplink its RAs.
	local ra
	ra="$(sysctl -n "net.ipv6.conf.$UPLINK.accept_ra")"
	if [[ $ra == 1 ]]; then sysctl -qw "net.ipv6.conf.$UPLINK.accept_ra=2"; fi
	sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	mv "$STATE/host.new" "$STATE/host"
}

host_fini() {
	[[ -f $STATE/host ]] || return 0
	local ip_forward forwarding6 accept_ra
	# shellcheck disable=SC1091
	source "$STATE/host"
	sysctl -qw "net.ipv4.ip_forward=$ip_forward" "net.ipv6.conf.all.forwarding=$forwarding6" \
		"net.ipv6.conf.$UPLINK.accept_ra=$accept_ra"
	rm -f "$STATE/host"
}

# ---------- one zone ----------

# rules ACTION I NET NET6: the zone's rules, both families, appended (-A) or
# deleted (-D).
rules() {
	local act=$1 ifc="lsh-$2" c=(-m comment --comment "lsh-ln$2") ipt net
	for ipt in iptables ip6tables; do
		if [[ $ipt == iptables ]]; then net=$3; else net=$4; fi
		rule "$ipt" "$act" nat POSTROUTING -s "$net" -o "$UPLINK" "${c[@]}" -j MASQUERADE
		rule "$ipt" "$act" filter FORWARD -i "$ifc" -o "$UPLINK" "${c[@]}" -j ACCEPT
		rule "$ipt" "$act" filter FORWARD -i "$UPLINK" -o "$ifc" -m conntrack --ctstate ESTABLISHED,RELATED "${c[@]}" -j ACCEPT
	done
}

# rule IPTABLES ACTION TABLE CHAIN SPEC...: one rule; a rule that is not
# there to delete is no failure (a down after a half-made up).
rule() {
	local ipt=$1 act=$2 table=$3 chain=$4
	shift 4
	if [[ $act == -A ]]; then
		"$ipt" -w -t "$table" -A "$chain" "$@"
	elif ! "$ipt" -w -t "$table" -D "$chain" "$@" 2>/dev/null; then
		! "$ipt" -w -t "$table" -C "$chain" "$@" 2>/dev/null || die "cannot delete: $ipt -t $table -D $chain $*"
	fi
}

zone_up() {
	local i=$1 z="ln$1" ifc="lsh-$1" net gw addr net6 gw6 addr6
	read -r net gw addr <<<"$(net4 "$i")"
	read -r net6 gw6 addr6 <<<"$(net6 "$i")"
	if [[ -e /run/netns/$z ]] || ip link show "$ifc" >/dev/null 2>&1; then
		die "$z: namespace or $ifc exists already"
	fi
	ip netns add "$z"
	ip link add "$ifc" type veth peer name eth0 netns "$z"
	ip addr add "$gw/30" dev "$ifc"
	ip -6 addr add "$gw6/64" dev "$ifc" nodad
	ip -n "$z" addr add "$addr/30" dev eth0
	ip -n "$z" -6 addr add "$addr6/64" dev eth0 nodad
	ip link set "$ifc" up
	ip -n "$z" link set lo up
	ip -n "$z" link set eth0 up
	ip -n "$z" route add default via "$gw"
	ip -n "$z" -6 route add default via "$gw6"
	rules -A "$i" "$net" "$net6"
}

zone_down() {
	local i=$1 z="ln$1" net net6
	read -r net _ _ <<<"$(net4 "$i")"
	read -r net6 _ _ <<<"$(net6 "$i")"
	# The link goes with the namespace.
	if [[ -e /run/netns/$z ]]; then ip netns del "$z"; fi
	rules -D "$i" "$net" "$net6"
}

cmd="${1:-}"
shift || true
case $cmd in
up)
	host_init
	for i in "$@"; do zone_up "$i"; done
	;;
down)
	for i in "$@"; do zone_down "$i"; done
	# The namespaces' names, not their links: the kernel removes a deleted
	# namespace's links a little later.
	if ! compgen -G "/run/netns/ln[0-9]*" >/dev/null; then host_fini; fi
	;;
*)
	echo "usage: bench/lean.sh up|down INDEX..." >&2
	exit 2
	;;
esac
