#!/usr/bin/env bash
# bench/zone.sh: the shell-script peer of `nszone up` and `nszone down`, used by
# scripts/bench. It builds what nszone builds for a zone that allows
# [internet], both families, both walls, the way a careful administrator would
# script it: ip(8) for the namespace, link, addresses and routes, and one
# iptables-restore --noflush transaction per family and wall (atomic, so no
# zone ever runs with half a policy), firewall before link.
#
#   bench/zone.sh up INDEX...     create zones sz<INDEX> (INDEX 1..16383)
#   bench/zone.sh down INDEX...   remove them; the last one out restores the host
#
# Zone sz<I>: namespace /run/netns/sz<I>; host link zsh-<I>, eth0 inside;
# 10.251.0.0/16 cut into /30s and fd6e:737a:7b:<I>::/64; chains ZSH-*.
#
# Host wall (filter, both families), mirroring nszone's NSZ-* chains:
#   FORWARD -> ZSH-FORWARD: -i zsh-I -> ZSH-sz<I>-out, -o zsh-I -> ZSH-sz<I>-in,
#              any other zsh-* rejected
#   INPUT   -> ZSH-INPUT:   -i zsh-I -> ZSH-sz<I>-host
#   OUTPUT  -> ZSH-OUTPUT:  -o zsh-I -> ZSH-sz<I>-hout
#   -out: replies accepted, invalid dropped, other zones rejected, DNS to the
#         host's resolvers accepted, lan (and the uplink's subnets) rejected,
#         the uplink accepted, the rest rejected (TCP reset, ICMP)
#   nat POSTROUTING -> ZSH-POSTROUTING: -s ZONE-NET -o UPLINK MASQUERADE
# Inner wall, in the zone: INPUT -> ZSH-IN (lo, replies, NDP, drop), OUTPUT ->
# ZSH-OUT (lo, replies, NDP, DNS, the host's addresses and lan rejected, rest
# accepted).
#
# It refuses to run in the machine's initial network namespace: it is a
# benchmark peer, meant for the sandbox that scripts/bench runs in.
set -euo pipefail

die() { echo "bench/zone.sh: $*" >&2; exit 1; }

# shellcheck source=sandbox-check.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/sandbox-check.sh"
in_sandbox || die "refusing to run: this is (or cannot be told apart from) the machine's own network namespace"

STATE="${ZSH_STATE:-${TMPDIR:-/tmp}/zsh-bench-state}"
UPLINK="${UPLINK:-$(ip -o route show default | awk '{print $5; exit}')}"
[[ -n $UPLINK ]] || die "no uplink (no default route); set UPLINK"
LAN4=(10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 169.254.0.0/16)
LAN6=(fc00::/7 fe80::/10)

# What the host is: the uplink's addresses and subnets, the resolvers.
mapfile -t UP4 < <(ip -o -4 addr show dev "$UPLINK" scope global | awk '{print $4}')
mapfile -t UP6 < <(ip -o -6 addr show dev "$UPLINK" scope global | awk '{print $4}')
mapfile -t NS4 < <(awk '$1 == "nameserver" && $2 ~ /^[0-9.]+$/ && $2 !~ /^127\./ {print $2}' /etc/resolv.conf)
mapfile -t NS6 < <(awk '$1 == "nameserver" && $2 ~ /:/ && $2 != "::1" {print $2}' /etc/resolv.conf)

# net4 I: the zone's /30 as "NET GW ZONE".
net4() {
	local a=$((4 * $1))
	echo "10.251.$((a / 256)).$((a % 256))/30 10.251.$((a / 256)).$((a % 256 + 1)) 10.251.$((a / 256)).$((a % 256 + 2))"
}
net6() {
	local h
	h="$(printf %x "$1")"
	echo "fd6e:737a:7b:$h::/64 fd6e:737a:7b:$h::1 fd6e:737a:7b:$h::2"
}

# subnet CIDR: the network of an interface address (a.b.c.d/len or v6/len).
subnet4() {
	local ip=${1%/*} len=${1#*/} a b c d n
	IFS=. read -r a b c d <<<"$ip"
	n=$(((a << 24 | b << 16 | c << 8 | d) & (0xffffffff << (32 - len)) & 0xffffffff))
	echo "$((n >> 24 & 255)).$((n >> 16 & 255)).$((n >> 8 & 255)).$((n & 255))/$len"
}

# ---------- the host's side, once ----------

host_init() {
	# The kernel, not a file, says whether the host's side is in place.
	if iptables -w -n -L ZSH-FORWARD >/dev/null 2>&1; then return 0; fi
	mkdir -p "$STATE"
	{
		echo "ip_forward=$(sysctl -n net.ipv4.ip_forward)"
		echo "forwarding6=$(sysctl -n net.ipv6.conf.all.forwarding)"
		echo "accept_ra=$(sysctl -n "net.ipv6.conf.$UPLINK.accept_ra")"
	} >"$STATE/host.new"
	local f rej
	for f in 4 6; do
		if [[ $f == 4 ]]; then rej=icmp-admin-prohibited; else rej=icmp6-adm-prohibited; fi
		"$(ipt $f)-restore" -w -n <<EOF
*filter
:ZSH-FORWARD - [0:0]
:ZSH-INPUT - [0:0]
:ZSH-OUTPUT - [0:0]
-A ZSH-FORWARD -i zsh-+ -m comment --comment zsh -j REJECT --reject-with $rej
-A ZSH-FORWARD -o zsh-+ -m comment --comment zsh -j DROP
-A ZSH-INPUT -i zsh-+ -m comment --comment zsh -j REJECT --reject-with $rej
-A ZSH-OUTPUT -o zsh-+ -m comment --comment zsh -j REJECT --reject-with $rej
-I FORWARD 1 -m comment --comment zsh -j ZSH-FORWARD
-I INPUT 1 -m comment --comment zsh -j ZSH-INPUT
-I OUTPUT 1 -m comment --comment zsh -j ZSH-OUTPUT
COMMIT
*nat
:ZSH-POSTROUTING - [0:0]
-I POSTROUTING 1 -m comment --comment zsh -j ZSH-POSTROUTING
COMMIT
EOF
	done
	# accept_ra=2 first, so that forwarding does not cost the uplink its RAs.
	local ra
	ra="$(sysctl -n "net.ipv6.conf.$UPLINK.accept_ra")"
	if [[ $ra == 1 ]]; then sysctl -qw "net.ipv6.conf.$UPLINK.accept_ra=2"; fi
	sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	mv "$STATE/host.new" "$STATE/host"
}

host_fini() {
	local f
	for f in 4 6; do
		"$(ipt $f)" -w -n -L ZSH-FORWARD >/dev/null 2>&1 || continue
		"$(ipt $f)-restore" -w -n <<EOF
*filter
-D FORWARD -m comment --comment zsh -j ZSH-FORWARD
-D INPUT -m comment --comment zsh -j ZSH-INPUT
-D OUTPUT -m comment --comment zsh -j ZSH-OUTPUT
:ZSH-FORWARD - [0:0]
:ZSH-INPUT - [0:0]
:ZSH-OUTPUT - [0:0]
-X ZSH-FORWARD
-X ZSH-INPUT
-X ZSH-OUTPUT
COMMIT
*nat
-D POSTROUTING -m comment --comment zsh -j ZSH-POSTROUTING
:ZSH-POSTROUTING - [0:0]
-X ZSH-POSTROUTING
COMMIT
EOF
	done
	[[ -f $STATE/host ]] || return 0
	local ip_forward forwarding6 accept_ra
	# shellcheck disable=SC1091
	source "$STATE/host"
	sysctl -qw "net.ipv4.ip_forward=$ip_forward" "net.ipv6.conf.all.forwarding=$forwarding6" \
		"net.ipv6.conf.$UPLINK.accept_ra=$accept_ra"
	rm -f "$STATE/host"
}

ipt() { if [[ $1 == 4 ]]; then echo iptables; else echo ip6tables; fi; }

# ---------- one zone ----------

# host_rules F Z IF NET: the host wall's rules of zone Z (family F).
host_rules() {
	local f=$1 z=$2 ifc=$3 net=$4 c="-m comment --comment zsh-$2" rej d ns lan=() up=()
	if [[ $f == 4 ]]; then
		rej=icmp-admin-prohibited ns=("${NS4[@]}") lan=("${LAN4[@]}")
		for d in "${UP4[@]}"; do up+=("$(subnet4 "$d")"); done
	else
		rej=icmp6-adm-prohibited ns=("${NS6[@]}") lan=("${LAN6[@]}")
		up=("${UP6[@]}") # iptables masks the host bits
	fi
	echo "*filter"
	echo ":ZSH-$z-out - [0:0]"
	echo ":ZSH-$z-in - [0:0]"
	echo ":ZSH-$z-host - [0:0]"
	echo ":ZSH-$z-hout - [0:0]"
	echo "-A ZSH-$z-out $c -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
	echo "-A ZSH-$z-out $c -m conntrack --ctstate INVALID -j DROP"
	echo "-A ZSH-$z-out -o zsh-+ $c -j REJECT --reject-with $rej"
	for d in "${ns[@]}"; do
		echo "-A ZSH-$z-out -d $d -p tcp --dport 53 $c -j ACCEPT"
		echo "-A ZSH-$z-out -d $d -p udp --dport 53 $c -j ACCEPT"
	done
	for d in "${lan[@]}" "${up[@]}"; do
		echo "-A ZSH-$z-out -d $d -o $UPLINK $c -j REJECT --reject-with $rej"
	done
	echo "-A ZSH-$z-out -o $UPLINK $c -j ACCEPT"
	echo "-A ZSH-$z-out -p tcp $c -j REJECT --reject-with tcp-reset"
	echo "-A ZSH-$z-out $c -j REJECT --reject-with $rej"
	echo "-A ZSH-$z-in $c -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
	echo "-A ZSH-$z-in $c -j DROP"
	echo "-A ZSH-$z-host $c -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
	echo "-A ZSH-$z-host $c -m conntrack --ctstate INVALID -j DROP"
	if [[ $f == 6 ]]; then
		echo "-A ZSH-$z-host -p ipv6-icmp --icmpv6-type 135 $c -j ACCEPT"
		echo "-A ZSH-$z-host -p ipv6-icmp --icmpv6-type 136 $c -j ACCEPT"
	fi
	echo "-A ZSH-$z-host -p tcp $c -j REJECT --reject-with tcp-reset"
	echo "-A ZSH-$z-host $c -j REJECT --reject-with $rej"
	echo "-A ZSH-$z-hout $c -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
	if [[ $f == 6 ]]; then
		echo "-A ZSH-$z-hout -p ipv6-icmp --icmpv6-type 135 $c -j ACCEPT"
		echo "-A ZSH-$z-hout -p ipv6-icmp --icmpv6-type 136 $c -j ACCEPT"
	fi
	echo "-A ZSH-$z-hout $c -j REJECT --reject-with $rej"
	echo "-I ZSH-FORWARD 1 -i $ifc $c -j ZSH-$z-out"
	echo "-I ZSH-FORWARD 1 -o $ifc $c -j ZSH-$z-in"
	echo "-I ZSH-INPUT 1 -i $ifc $c -j ZSH-$z-host"
	echo "-I ZSH-OUTPUT 1 -o $ifc $c -j ZSH-$z-hout"
	echo "COMMIT"
	echo "*nat"
	echo "-A ZSH-POSTROUTING -s $net -o $UPLINK $c -j MASQUERADE"
	echo "COMMIT"
}

# inner_rules F Z NET GW: the inner wall of zone Z (family F).
inner_rules() {
	local f=$1 z=$2 net=$3 gw=$4 c="-m comment --comment zsh-$2" rej d ns lan=() up=() mine=() cast
	if [[ $f == 4 ]]; then
		rej=icmp-admin-prohibited ns=("${NS4[@]}") lan=("${LAN4[@]}") cast=(224.0.0.0/4 255.255.255.255/32)
		for d in "${UP4[@]}"; do mine+=("${d%/*}/32"); up+=("$(subnet4 "$d")"); done
		mine+=("$gw/32")
	else
		rej=icmp6-adm-prohibited ns=("${NS6[@]}") lan=("${LAN6[@]}") cast=(ff00::/8)
		for d in "${UP6[@]}"; do mine+=("${d%/*}/128"); up+=("$d"); done
		mine+=("$gw/128" fe80::/10)
	fi
	echo "*filter"
	echo ":ZSH-IN - [0:0]"
	echo ":ZSH-OUT - [0:0]"
	echo "-A ZSH-IN -i lo $c -j ACCEPT"
	echo "-A ZSH-IN $c -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
	echo "-A ZSH-IN $c -m conntrack --ctstate INVALID -j DROP"
	if [[ $f == 6 ]]; then
		echo "-A ZSH-IN -p ipv6-icmp --icmpv6-type 135 $c -j ACCEPT"
		echo "-A ZSH-IN -p ipv6-icmp --icmpv6-type 136 $c -j ACCEPT"
	fi
	echo "-A ZSH-IN $c -j DROP"
	echo "-A ZSH-OUT -o lo $c -j ACCEPT"
	echo "-A ZSH-OUT $c -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
	echo "-A ZSH-OUT $c -m conntrack --ctstate INVALID -j DROP"
	if [[ $f == 6 ]]; then
		echo "-A ZSH-OUT -p ipv6-icmp --icmpv6-type 135 $c -j ACCEPT"
		echo "-A ZSH-OUT -p ipv6-icmp --icmpv6-type 136 $c -j ACCEPT"
	fi
	for d in "${ns[@]}"; do
		echo "-A ZSH-OUT -d $d -p tcp --dport 53 $c -j ACCEPT"
		echo "-A ZSH-OUT -d $d -p udp --dport 53 $c -j ACCEPT"
	done
	for d in "${mine[@]}" "$net" "${lan[@]}" "${up[@]}" "${cast[@]}"; do
		echo "-A ZSH-OUT -d $d $c -j REJECT --reject-with $rej"
	done
	echo "-A ZSH-OUT $c -j ACCEPT"
	echo "-A ZSH-OUT -p tcp $c -j REJECT --reject-with tcp-reset"
	echo "-A ZSH-OUT $c -j REJECT --reject-with $rej"
	echo "-I INPUT 1 $c -j ZSH-IN"
	echo "-I OUTPUT 1 $c -j ZSH-OUT"
	echo "COMMIT"
}

zone_up() {
	local i=$1 z="sz$1" ifc="zsh-$1" net gw addr net6 gw6 addr6
	read -r net gw addr <<<"$(net4 "$i")"
	read -r net6 gw6 addr6 <<<"$(net6 "$i")"
	if [[ -e /run/netns/$z ]] || ip link show "$ifc" >/dev/null 2>&1; then
		die "$z: namespace or $ifc exists already"
	fi
	# Firewall first: the host's catch-alls already reject zsh-*, the zone's
	# own rules come before its link does.
	iptables-restore -w -n <<<"$(host_rules 4 "$z" "$ifc" "$net")"
	ip6tables-restore -w -n <<<"$(host_rules 6 "$z" "$ifc" "$net6")"
	ip netns add "$z"
	# ip netns exec also binds /etc/netns/$z over /etc: write DNS after.
	ip netns exec "$z" sh -c 'iptables-restore -w -n && ip6tables-restore -w -n <&3' \
		<<<"$(inner_rules 4 "$z" "$net" "$gw")" 3<<<"$(inner_rules 6 "$z" "$net6" "$gw6")"
	mkdir -p "/etc/netns/$z"
	{
		echo "# bench/zone.sh: DNS for zone $z"
		for d in "${NS4[@]}" "${NS6[@]}"; do echo "nameserver $d"; done
	} >"/etc/netns/$z/resolv.conf"
	ip link add "$ifc" type veth peer name eth0 netns "$z"
	sysctl -qw "net.ipv6.conf.$ifc.accept_ra=0" "net.ipv6.conf.$ifc.accept_dad=0"
	ip addr add "$gw/30" dev "$ifc"
	ip -6 addr add "$gw6/64" dev "$ifc" nodad
	ip -n "$z" addr add "$addr/30" dev eth0
	ip -n "$z" -6 addr add "$addr6/64" dev eth0 nodad
	ip link set "$ifc" up
	ip -n "$z" link set lo up
	ip -n "$z" link set eth0 up
	ip -n "$z" route add default via "$gw"
	ip -n "$z" -6 route add default via "$gw6"
}

zone_down() {
	local i=$1 z="sz$1" ifc="zsh-$1" net gw addr net6 gw6 addr6 f n c
	read -r net gw addr <<<"$(net4 "$i")"
	read -r net6 _ _ <<<"$(net6 "$i")"
	# The link goes with the namespace: the zone is closed from here on.
	if [[ -e /run/netns/$z ]]; then ip netns del "$z"; fi
	c="-m comment --comment zsh-$z"
	for f in 4 6; do
		if [[ $f == 4 ]]; then n=$net; else n=$net6; fi
		"$(ipt $f)-restore" -w -n <<EOF
*filter
-D ZSH-FORWARD -i $ifc $c -j ZSH-$z-out
-D ZSH-FORWARD -o $ifc $c -j ZSH-$z-in
-D ZSH-INPUT -i $ifc $c -j ZSH-$z-host
-D ZSH-OUTPUT -o $ifc $c -j ZSH-$z-hout
:ZSH-$z-out - [0:0]
:ZSH-$z-in - [0:0]
:ZSH-$z-host - [0:0]
:ZSH-$z-hout - [0:0]
-X ZSH-$z-out
-X ZSH-$z-in
-X ZSH-$z-host
-X ZSH-$z-hout
COMMIT
*nat
-D ZSH-POSTROUTING -s $n -o $UPLINK $c -j MASQUERADE
COMMIT
EOF
	done
	rm -rf "/etc/netns/$z"
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
	links="$(ip -o link show)"
	if [[ $links != *": zsh-"* ]]; then host_fini; fi
	;;
*)
	echo "usage: bench/zone.sh up|down INDEX..." >&2
	exit 2
	;;
esac
