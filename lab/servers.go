package lab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// servers are the HTTP and DNS servers of one lab machine. The listening
// sockets are made by the caller, inside the machine's namespace; serving
// them from any goroutine is fine, since a socket keeps its namespace.
//
// The HTTP server is a few lines of its own rather than net/http: the lab
// lives in the binary users run, and net/http would bring its TLS and
// HTTP/2 code into every start of it. The lab's clients (curl, check's
// probes) send one request and read one answer.
type servers struct {
	log   *slog.Logger
	zone  records
	body  string
	httpL net.Listener
	udp   net.PacketConn
	tcp   net.Listener

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open connections, closed by Close
	closed bool
}

// serve starts answering: HTTP on httpL with body, DNS from zone on dnsUDP
// and dnsTCP.
func serve(log *slog.Logger, body string, zone records, httpL net.Listener, dnsUDP net.PacketConn, dnsTCP net.Listener) *servers {
	s := &servers{log: log, zone: zone, body: body, httpL: httpL, udp: dnsUDP, tcp: dnsTCP, conns: map[net.Conn]struct{}{}}
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		s.accept(httpL, "http", s.serveHTTP)
	}()
	go func() {
		defer s.wg.Done()
		s.serveUDP()
	}()
	go func() {
		defer s.wg.Done()
		s.accept(dnsTCP, "dns", s.serveConn)
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

// accept serves each connection of l with serve until l is closed.
func (s *servers) accept(l net.Listener, what string, serve func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("lab "+what+" server stopped", "addr", l.Addr(), "err", err)
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
			serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// serveHTTP reads one request's head and answers it with the body.
func (s *servers) serveHTTP(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	head := make([]byte, 0, 1024)
	buf := make([]byte, 1024)
	for !bytes.Contains(head, []byte("\r\n\r\n")) {
		n, err := c.Read(buf)
		if err != nil || len(head)+n > 16<<10 {
			return
		}
		head = append(head, buf[:n]...)
	}
	resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len(s.body))
	if !bytes.HasPrefix(head, []byte("HEAD ")) {
		resp += s.body
	}
	_, _ = io.WriteString(c, resp)
}

// serveConn answers length-prefixed queries (RFC 7766) until the client is
// done or idle.
func (s *servers) serveConn(c net.Conn) {
	defer c.Close()
	for {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
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
	err := errors.Join(s.httpL.Close(), s.udp.Close(), s.tcp.Close())
	s.wg.Wait()
	return err
}
