// Package follow reports the kernel's network changes in the current network
// namespace, so that `nszone watch` can re-converge zones when something
// outside nszone (NetworkManager, a DHCP client, a VPN, another firewall
// tool) changes links, addresses, routes or the nftables ruleset, instead of
// polling or noticing only at the next manual apply.
//
// An Event says only that something changed and what, in words for the log:
// the consumer reconciles from its desired state, never from the event's
// content. A "resync" Event means events may have been lost (a socket
// overflowed or a subscription broke and was renewed): converge everything.
// Debounce turns a burst of events (a zone coming up, an iptables-restore)
// into one batch, hence one converge.
package follow
