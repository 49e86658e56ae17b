package lab

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// servers are the HTTP and DNS servers of one lab machine. The listening
// sockets are made by the caller, inside the machine's namespace; serving
// them from any goroutine is fine, since a socket keeps its namespace.
type servers struct {
	log  *slog.Logger
	zone records
	http *http.Server
	udp  net.PacketConn
	tcp  net.Listener

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open DNS-over-TCP connections
	closed bool
}

// serve starts answering: HTTP on httpL with body, DNS from zone on dnsUDP
// and dnsTCP.
func serve(log *slog.Logger, body string, zone records, httpL net.Listener, dnsUDP net.PacketConn, dnsTCP net.Listener) *servers {
	s := &servers{log: log, zone: zone, udp: dnsUDP, tcp: dnsTCP, conns: map[net.Conn]struct{}{}}
	s.http = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(httpL); !errors.Is(err, http.ErrServerClosed) {
			log.Error("lab http server stopped", "addr", httpL.Addr(), "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.serveUDP()
	}()
	go func() {
		defer s.wg.Done()
		s.serveTCP()
	}()
	return s
}

func (s *servers) serveUDP() {
	buf := make([]byte, 65535)
	for {
		n, addr, err := s.udp.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("lab dns server stopped", "addr", s.udp.LocalAddr(), "err", err)
			}
			return
		}
		if resp := respond(buf[:n], s.zone, true); resp != nil {
			if _, err := s.udp.WriteTo(resp, addr); err != nil {
				s.log.Debug("lab dns reply failed", "to", addr, "err", err)
			}
		}
	}
}

func (s *servers) serveTCP() {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("lab dns server stopped", "addr", s.tcp.Addr(), "err", err)
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// serveConn answers length-prefixed queries (RFC 7766) until the client is
// done or idle.
func (s *servers) serveConn(c net.Conn) {
	defer c.Close()
	for {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var size [2]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		req := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		resp := respond(req, s.zone, false)
		if resp == nil {
			return
		}
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...)); err != nil {
			return
		}
	}
}

// Close stops all servers and waits for their goroutines.
func (s *servers) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := errors.Join(s.http.Close(), s.udp.Close(), s.tcp.Close())
	s.wg.Wait()
	return err
}
