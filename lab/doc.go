// Package lab builds a small simulated network, so that nszone can be tested,
// and tried by users, without a real LAN or internet and without touching the
// host's network: it runs only inside the sandbox (package sandbox), whose own
// network namespace plays the host.
//
//	 host (the sandbox's netns)          lab_router                            lab_inet
//	+------------------------+     +-------------------------------+     +---------------------------+
//	| eth0 192.168.50.2/24   |-----| host0 --+                     |     |                           |
//	|      fd00:50::2/64     |     |         +-- br-lan            |     |                           |
//	| default via the router |  +--| lan0 ---+   192.168.50.1/24   |     |                           |
//	+------------------------+  |  |             fd00:50::1/64     |     |                           |
//	                            |  | wan0 203.0.113.1/24           |-----| eth0 203.0.113.10/24      |
//	                            |  |      2001:db8:113::1/64       |     |      2001:db8:113::10/64  |
//	                            |  +-------------------------------+     | HTTP :80, DNS :53         |
//	                            |                                        +---------------------------+
//	                            |          lab_lan
//	                            |  +---------------------------+
//	                            +--| eth0 192.168.50.10/24     |
//	                               |      fd00:50::10/64       |
//	                               | HTTP :80, DNS :53         |
//	                               +---------------------------+
//
// lab_router forwards between the LAN and the "internet" and has no other
// route, so nothing can leave the lab. Both DNS servers answer www.example
// (the internet server) and nas.lan.example (the LAN server); every other
// name is NXDOMAIN. The host's /etc/resolv.conf names the LAN's server, as a
// home router would hand out.
package lab
