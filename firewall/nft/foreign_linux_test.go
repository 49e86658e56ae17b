package nft

import (
	"encoding/binary"
	"fmt"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// encodeExprs is a rule's NFTA_RULE_EXPRESSIONS as the kernel sends it.
func encodeExprs(t *testing.T, es ...expr.Any) *netlink.AttributeDecoder {
	t.Helper()
	var attrs []netlink.Attribute
	for _, e := range es {
		b, err := expr.Marshal(unix.NFPROTO_INET, e)
		if err != nil {
			t.Fatal(err)
		}
		attrs = append(attrs, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: b})
	}
	b, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		t.Fatal(err)
	}
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		t.Fatal(err)
	}
	ad.ByteOrder = binary.BigEndian
	return ad
}

func TestForeignClassify(t *testing.T) {
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	iif := &expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}
	oif := &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}
	nsz := cmpEq([]byte("nsz-"))
	exact, _ := ifName("nsz-web")
	invalid := []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binary.NativeEndian.AppendUint32(nil, expr.CtStateBitINVALID), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
	for _, c := range []struct {
		name  string
		exprs []expr.Any
		want  ruleKind
	}{
		{"drop", []expr.Any{drop}, ruleDrop},
		{"counter drop", []expr.Any{&expr.Counter{}, drop}, ruleDrop},
		{"log counter drop", []expr.Any{&expr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Data: []byte("x")}, &expr.Counter{}, drop}, ruleDrop},
		{"reject", []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: 1}}, ruleReject},
		{"counter reject", []expr.Any{&expr.Counter{}, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: 3}}, ruleReject},
		{`iifname "nsz-*" accept`, []expr.Any{iif, nsz, accept}, ruleAcceptFrom},
		{`oifname "nsz-*" counter accept`, []expr.Any{oif, nsz, &expr.Counter{}, accept}, ruleAcceptTo},
		{`iifname "nsz*" accept`, []expr.Any{iif, cmpEq([]byte("nsz")), accept}, ruleAcceptFrom},
		{"empty", nil, ruleOther},
		{"accept", []expr.Any{accept}, ruleOther},
		{"ct state invalid drop", append(invalid, drop), ruleOther},
		{"limit drop", []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: 1, Unit: expr.LimitTimeSecond}, drop}, ruleOther},
		{"jump", []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "x"}}, ruleOther},
		{"immediate into a register", []expr.Any{&expr.Immediate{Register: 1, Data: make([]byte, 4)}}, ruleOther},
		{`iifname "nsz-web" accept`, []expr.Any{iif, cmpEq(exact), accept}, ruleOther},
		{`iifname "nsz-" accept`, []expr.Any{iif, cmpEq(append([]byte("nsz-"), make([]byte, 12)...)), accept}, ruleOther},
		{`iifname "eth*" accept`, []expr.Any{iif, cmpEq([]byte("eth")), accept}, ruleOther},
		{`iifname != "nsz-*" accept`, []expr.Any{iif, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte("nsz-")}, accept}, ruleOther},
		{"another register", []expr.Any{iif, &expr.Cmp{Op: expr.CmpOpEq, Register: 2, Data: []byte("nsz-")}, accept}, ruleOther},
		{`iifname "nsz-*" drop`, []expr.Any{iif, nsz, drop}, ruleOther},
		{`iifname "nsz-*" ct state invalid accept`, append(append([]expr.Any{iif, nsz}, invalid...), accept), ruleOther},
		{"iif index", []expr.Any{&expr.Meta{Key: expr.MetaKeyIIF, Register: 1}, nsz, accept}, ruleOther},
	} {
		if got := classify(decodeExprs(encodeExprs(t, c.exprs...))); got != c.want {
			t.Errorf("%s: classify = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestForeignJudge(t *testing.T) {
	fwd := baseCandidate{family: unix.NFPROTO_INET, table: "filter", name: "forward", hook: unix.NF_INET_FORWARD, policy: nfDrop}
	in := baseCandidate{family: unix.NFPROTO_IPV4, table: "fw", name: "in", hook: unix.NF_INET_LOCAL_IN, policy: nfAccept}
	out := baseCandidate{family: unix.NFPROTO_IPV6, table: "fw", name: "out", hook: unix.NF_INET_LOCAL_OUT, policy: nfDrop}
	const (
		fwdFrom = `nft insert rule inet filter forward iifname "nsz-*" accept`
		fwdTo   = `nft insert rule inet filter forward oifname "nsz-*" accept`
		inFrom  = `nft insert rule ip fw in iifname "nsz-*" accept`
		outTo   = `nft insert rule ip6 fw out oifname "nsz-*" accept`
	)
	r := func(kinds ...ruleKind) []foreignRule {
		var rules []foreignRule
		for i, k := range kinds {
			rules = append(rules, foreignRule{handle: uint64(10 + i), kind: k})
		}
		return rules
	}
	for _, c := range []struct {
		name  string
		ch    baseCandidate
		rules []foreignRule
		why   string // empty: not reported
		fixes []string
	}{
		{"forward policy drop", fwd, nil, "policy drop", []string{fwdFrom, fwdTo}},
		{"forward half fixed", fwd, r(ruleOther, ruleAcceptFrom), "policy drop", []string{fwdTo}},
		{"forward fixed", fwd, r(ruleAcceptTo, ruleOther, ruleAcceptFrom), "", nil},
		{"forward fixed behind a drop", fwd, r(ruleAcceptTo, ruleDrop, ruleAcceptFrom), "rule 2 (handle 11) drops everything it reaches", []string{fwdFrom}},
		{"input accept", in, r(ruleOther, ruleOther), "", nil},
		{"input last rule drops", in, r(ruleOther, ruleDrop), "rule 2 (handle 11) drops everything it reaches", []string{inFrom}},
		{"input reject before drop", in, r(ruleReject, ruleDrop), "rule 1 (handle 10) rejects everything it reaches", []string{inFrom}},
		{"input fixed", in, r(ruleAcceptFrom, ruleDrop), "", nil},
		{"input accepts the wrong direction", in, r(ruleAcceptTo, ruleDrop), "rule 2 (handle 11) drops everything it reaches", []string{inFrom}},
		{"output policy drop", out, r(ruleAcceptFrom), "policy drop", []string{outTo}},
		{"output fixed", out, r(ruleAcceptTo), "", nil},
	} {
		f, ok := judge(c.ch, c.rules)
		if ok != (c.why != "") || f.Why != c.why || !reflect.DeepEqual(f.Fixes, c.fixes) {
			t.Errorf("%s: judge = %+v %v, want why %q fixes %q", c.name, f, ok, c.why, c.fixes)
		}
	}
	f, _ := judge(fwd, nil)
	if s, want := f.String(), "nftables table inet filter, chain forward (hook forward) drops zone traffic: policy drop"; s != want {
		t.Errorf("String = %q, want %q", s, want)
	}
}

// sh runs a shell command in the test process's own network namespace (the
// sandbox's), or in the pinned namespace ns.
func sh(t *testing.T, ns, command string) string {
	t.Helper()
	if ns != "" {
		return run(t, ns, "sh", "-c", command)
	}
	out, err := exec.Command("sh", "-c", command).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", command, err, out)
	}
	return string(out)
}

// (a) The typical native firewall: inet filter forward, policy drop, in the
// sandbox's own namespace, read by ForeignDrops itself. Its fixes, run as
// printed, make it go away.
func TestForeignDropsPolicyDrop(t *testing.T) {
	rootTest(t)
	needNft(t)
	if got, err := ForeignDrops(); err != nil || len(got) != 0 {
		t.Fatalf("ForeignDrops before: %v %v", got, err)
	}
	sh(t, "", `nft 'add table inet filter { chain forward { type filter hook forward priority 0; policy drop; }; }'`)
	t.Cleanup(func() { sh(t, "", "nft delete table inet filter") })

	got, err := ForeignDrops()
	want := []Foreign{{Family: "inet", Table: "filter", Chain: "forward", Hook: "forward", Why: "policy drop", Fixes: []string{
		`nft insert rule inet filter forward iifname "nsz-*" accept`,
		`nft insert rule inet filter forward oifname "nsz-*" accept`,
	}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ForeignDrops = %+v %v, want %+v", got, err, want)
	}
	t.Logf("%s; fixes: %q", got[0], got[0].Fixes)

	sh(t, "", got[0].Fixes[0])
	if got, err := ForeignDrops(); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0].Fixes, want[0].Fixes[1:]) {
		t.Fatalf("ForeignDrops after the first fix = %+v %v, want only the second fix", got, err)
	}
	sh(t, "", got[0].Fixes[1])
	if got, err := ForeignDrops(); err != nil || len(got) != 0 {
		t.Fatalf("ForeignDrops after the fixes = %+v %v, want none", got, err)
	}
	t.Logf("fixed:\n%s", sh(t, "", "nft list table inet filter"))
}

var handleRE = regexp.MustCompile(`\(handle (\d+)\) `)

// (b)-(f) and more, each in a namespace of its own.
func TestForeignDropsCases(t *testing.T) {
	rootTest(t)
	needNft(t)
	fix := func(family, table, chain, match string) string {
		return fmt.Sprintf(`nft insert rule %s %s %s %s "nsz-*" accept`, family, table, chain, match)
	}
	for i, c := range []struct {
		name  string
		setup []string // shell commands
		shows []string // what nft must list then, lest the case test nothing
		want  []Foreign
	}{
		{name: "b: input's last rule drops, output rejects", setup: []string{
			`nft 'add table inet fw { chain in { type filter hook input priority 0; policy accept; ct state established accept; counter drop; iifname "nsz-*" accept; }; }'`,
			`nft 'add table ip6 fw6 { chain out { type filter hook output priority 10; policy accept; log prefix "out " reject; }; }'`,
		}, want: []Foreign{
			{Family: "inet", Table: "fw", Chain: "in", Hook: "input", Why: "rule 2 (handle H) drops everything it reaches", Fixes: []string{fix("inet", "fw", "in", "iifname")}},
			{Family: "ip6", Table: "fw6", Chain: "out", Hook: "output", Why: "rule 1 (handle H) rejects everything it reaches", Fixes: []string{fix("ip6", "fw6", "out", "oifname")}},
		}},
		{name: "c: only conditional drops", setup: []string{
			`nft 'add table inet filter { chain input { type filter hook input priority 0; policy accept; ct state invalid drop; }; chain forward { type filter hook forward priority 0; policy accept; tcp dport 23 drop; }; }'`,
		}},
		{name: "d: iptables-nft's own", setup: []string{
			"iptables-nft -P FORWARD DROP", "iptables-nft -A INPUT -j DROP", "ip6tables-nft -P OUTPUT DROP",
		}, shows: []string{"table ip filter", "table ip6 filter", "hook forward priority filter; policy drop;", "counter packets 0 bytes 0 drop"}},
		{name: "e: nszone's own", setup: []string{
			`nft 'add table inet nszone { chain forward { type filter hook forward priority 0; policy drop; }; }'`,
			`nft 'add table ip nszone { chain input { type filter hook input priority 0; drop; }; }'`,
		}, shows: []string{"table inet nszone", "table ip nszone"}},
		{name: "f: nothing"},
		{name: "fixed, half fixed, dormant, other hooks and types, sorted", setup: []string{
			`nft 'add table ip zz { chain forward { type filter hook forward priority 0; policy drop; iifname "nsz-*" accept; oifname "nsz-*" counter accept; }; }'`,
			`nft 'add table ip aa { chain through { type filter hook forward priority -5; policy drop; iifname "nsz*" accept; }; chain out { type filter hook output priority 0; policy drop; oifname "nsz-*" accept; }; }'`,
			`nft 'add table inet sleepy { flags dormant; chain forward { type filter hook forward priority 0; policy drop; }; }'`,
			`nft 'add table inet pre { chain pre { type filter hook prerouting priority 0; policy drop; }; chain nat { type nat hook output priority 0; policy accept; }; }'`,
			`nft 'add table inet other { chain drops { drop; }; chain forward { type filter hook forward priority 0; jump drops; }; }'`,
			`nft 'add table inet late { chain input { type filter hook input priority 0; drop; iifname "nsz-*" accept; }; }'`,
		}, want: []Foreign{
			{Family: "inet", Table: "late", Chain: "input", Hook: "input", Why: "rule 1 (handle H) drops everything it reaches", Fixes: []string{fix("inet", "late", "input", "iifname")}},
			{Family: "ip", Table: "aa", Chain: "through", Hook: "forward", Why: "policy drop", Fixes: []string{fix("ip", "aa", "through", "oifname")}},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if strings.HasPrefix(c.name, "d:") {
				for _, cmd := range []string{"iptables-nft", "ip6tables-nft"} {
					if _, err := exec.LookPath(cmd); err != nil {
						t.Skipf("%s not installed", cmd)
					}
				}
			}
			ns := fmt.Sprintf("nftfor%d", i)
			h := newNS(t, ns)
			for _, cmd := range c.setup {
				sh(t, ns, cmd)
			}
			ruleset := sh(t, ns, "nft -a list ruleset")
			for _, s := range c.shows {
				if !strings.Contains(ruleset, s) {
					t.Fatalf("nft list ruleset lacks %q:\n%s", s, ruleset)
				}
			}
			got, err := foreignDropsIn(h.Fd())
			if err != nil {
				t.Fatal(err)
			}
			// A rule's handle is the kernel's choice: it must be the one
			// nft shows for a rule that drops or rejects.
			for i := range got {
				if m := handleRE.FindStringSubmatch(got[i].Why); m != nil {
					if !regexp.MustCompile(`(drop|reject)[^\n]* # handle ` + m[1] + `\n`).MatchString(ruleset) {
						t.Errorf("%s: no such rule in\n%s", got[i], ruleset)
					}
					got[i].Why = handleRE.ReplaceAllString(got[i].Why, "(handle H) ")
				}
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("foreignDropsIn = %+v\nwant %+v\nruleset:\n%s", got, c.want, ruleset)
			}
		})
	}
}
