package lab

import (
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// records is the whole DNS of the lab: lower-case fully qualified names and
// their addresses. The servers are authoritative for the root, so any name
// not here (and not above one that is) is NXDOMAIN.
type records map[string][]netip.Addr

const (
	dnsTTL       = 60
	ednsSize     = 1232 // the payload size DNS flag day 2020 settled on
	rcodeBadVers = dnsmessage.RCode(16)
)

var soaRecord = dnsmessage.Resource{
	Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("."), Type: dnsmessage.TypeSOA, Class: dnsmessage.ClassINET, TTL: dnsTTL},
	Body: &dnsmessage.SOAResource{
		NS:      dnsmessage.MustNewName("ns.lab.example."),
		MBox:    dnsmessage.MustNewName("hostmaster.lab.example."),
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		MinTTL:  dnsTTL,
	},
}

// respond answers one DNS query message; udp selects the size limit of the
// transport. It returns nil when the message deserves no answer at all (not a
// query, or too broken to echo its ID).
func respond(req []byte, zone records, udp bool) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil || h.Response {
		return nil
	}
	r := reply{hdr: dnsmessage.Header{
		ID:               h.ID,
		Response:         true,
		OpCode:           h.OpCode,
		Authoritative:    true,
		RecursionDesired: h.RecursionDesired,
	}, limit: 512}
	if !udp {
		r.limit = 65535
	}

	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		r.hdr.RCode = dnsmessage.RCodeFormatError
		return r.build()
	}
	r.question = &qs[0]
	if err := r.readEDNS(&p, udp); err != nil {
		r.hdr.RCode = dnsmessage.RCodeFormatError
		return r.build()
	}

	switch q := qs[0]; {
	case r.hdr.RCode != dnsmessage.RCodeSuccess: // set by readEDNS
	case h.OpCode != 0:
		r.hdr.RCode = dnsmessage.RCodeNotImplemented
	case q.Class != dnsmessage.ClassINET && q.Class != dnsmessage.ClassANY:
		r.hdr.RCode = dnsmessage.RCodeRefused
	default:
		exists := false
		r.answers, exists = lookup(zone, q)
		if !exists {
			r.hdr.RCode = dnsmessage.RCodeNameError
		}
		if len(r.answers) == 0 {
			r.authority = true // RFC 2308: negative answers carry the SOA
		}
	}
	return r.build()
}

// lookup returns the answers for q, and whether its name exists at all (an
// owner of records, or a name above one such as "lan.example.").
func lookup(zone records, q dnsmessage.Question) ([]dnsmessage.Resource, bool) {
	name := strings.ToLower(q.Name.String())
	exists := name == "."
	for owner := range zone {
		if owner == name || strings.HasSuffix(owner, "."+name) {
			exists = true
		}
	}
	var answers []dnsmessage.Resource
	if name == "." && (q.Type == dnsmessage.TypeSOA || q.Type == dnsmessage.TypeALL) {
		answers = append(answers, soaRecord)
	}
	for _, a := range zone[name] {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: dnsTTL}
		switch {
		case a.Is4() && (q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeALL):
			rh.Type = dnsmessage.TypeA
			answers = append(answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AResource{A: a.As4()}})
		case a.Is6() && (q.Type == dnsmessage.TypeAAAA || q.Type == dnsmessage.TypeALL):
			rh.Type = dnsmessage.TypeAAAA
			answers = append(answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
		}
	}
	return answers, exists
}

// reply is a response being put together.
type reply struct {
	hdr       dnsmessage.Header
	question  *dnsmessage.Question
	answers   []dnsmessage.Resource
	authority bool // add the SOA to the authority section
	edns      bool // the query had an OPT record, so the reply has one
	limit     int  // largest message the client takes
}

// readEDNS skips to the additional section and takes the client's EDNS
// payload size from its OPT record.
func (r *reply) readEDNS(p *dnsmessage.Parser, udp bool) error {
	if err := p.SkipAllAnswers(); err != nil {
		return err
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return err
	}
	for {
		h, err := p.AdditionalHeader()
		if err == dnsmessage.ErrSectionDone {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Type == dnsmessage.TypeOPT {
			r.edns = true
			if udp && int(h.Class) > r.limit {
				r.limit = min(int(h.Class), ednsSize)
			}
			if version := h.TTL >> 16 & 0xff; version != 0 {
				r.hdr.RCode = rcodeBadVers
			}
		}
		if err := p.SkipAdditional(); err != nil {
			return err
		}
	}
}

// build packs the reply; one that does not fit the limit goes out truncated
// (TC set, no records) so the client retries over TCP.
func (r *reply) build() []byte {
	msg, err := r.pack()
	if err == nil && len(msg) > r.limit {
		r.hdr.Truncated = true
		r.answers, r.authority = nil, false
		msg, err = r.pack()
	}
	if err != nil {
		return nil
	}
	return msg
}

func (r *reply) pack() ([]byte, error) {
	hdr := r.hdr
	hdr.RCode &= 0xf // the rest of an extended RCODE travels in the OPT record
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), hdr)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if r.question != nil {
		if err := b.Question(*r.question); err != nil {
			return nil, err
		}
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	for _, rr := range r.answers {
		var err error
		switch body := rr.Body.(type) {
		case *dnsmessage.AResource:
			err = b.AResource(rr.Header, *body)
		case *dnsmessage.AAAAResource:
			err = b.AAAAResource(rr.Header, *body)
		case *dnsmessage.SOAResource:
			err = b.SOAResource(rr.Header, *body)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := b.StartAuthorities(); err != nil {
		return nil, err
	}
	if r.authority {
		if err := b.SOAResource(soaRecord.Header, *soaRecord.Body.(*dnsmessage.SOAResource)); err != nil {
			return nil, err
		}
	}
	if err := b.StartAdditionals(); err != nil {
		return nil, err
	}
	if r.edns {
		var opt dnsmessage.ResourceHeader
		if err := opt.SetEDNS0(ednsSize, r.hdr.RCode, false); err != nil {
			return nil, err
		}
		if err := b.OPTResource(opt, dnsmessage.OPTResource{}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
