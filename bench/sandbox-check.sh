# Sourced by scripts/bench and bench/zone.sh: in_sandbox succeeds only inside
# the sandbox that `nszone lab` makes (the marker it sets, and a network
# namespace other than the machine's). The machine's namespace is PID 1's,
# and kthreadd's (PID 2 with parent 0): kernel threads always live in it,
# even where PID 1's cannot be read.
in_sandbox() {
	local self ref refs=() status
	[[ ${NSZONE_SANDBOX:-} == ready ]] || return 1
	self="$(readlink /proc/self/ns/net)" || return 1
	ref="$(readlink /proc/1/ns/net 2>/dev/null || true)"
	[[ -n $ref ]] && refs+=("$ref")
	status="$(cat /proc/2/status 2>/dev/null || true)"
	if [[ $status == *$'Name:\tkthreadd'* && $status == *$'PPid:\t0'* ]]; then
		ref="$(readlink /proc/2/ns/net 2>/dev/null || true)"
		[[ -n $ref ]] && refs+=("$ref")
	fi
	((${#refs[@]} > 0)) || return 1
	for ref in "${refs[@]}"; do
		[[ $self != "$ref" ]] || return 1
	done
}
