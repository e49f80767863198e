package redistest

import (
	"net"
	"sync"
	"testing"
)

// Proxy is a loopback TCP proxy in front of a server. Each accepted
// connection is numbered; Freeze stops forwarding server-to-client bytes
// of the connections a predicate selects while leaving them open, the
// silent stall a pub/sub connection can suffer after a failover.
type Proxy struct {
	Addr string
	ln   net.Listener
	to   string

	mu    sync.Mutex
	conns []*proxyConn
	wg    sync.WaitGroup
}

// ProxyConn describes one proxied connection for Freeze's predicate.
type ProxyConn struct {
	// FirstBytes is what the client sent first (its handshake and first
	// command), to tell a pub/sub connection from a command one.
	FirstBytes []byte
}

type proxyConn struct {
	info       ProxyConn
	client, up net.Conn
	mu         sync.Mutex
	cond       *sync.Cond
	frozen     bool
	closed     bool
}

// StartProxy proxies to addr until test cleanup.
func StartProxy(t testing.TB, addr string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), ln: ln, to: addr}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// URL is redis://proxy-address.
func (p *Proxy) URL() string { return "redis://" + p.Addr }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxyConn{client: c, up: up}
		pc.cond = sync.NewCond(&pc.mu)
		p.mu.Lock()
		p.conns = append(p.conns, pc)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(pc, c, up, false)
		go p.pipe(pc, up, c, true)
	}
}

func (p *Proxy) pipe(pc *proxyConn, from, to net.Conn, down bool) {
	defer p.wg.Done()
	defer func() {
		pc.mu.Lock()
		pc.closed = true
		pc.cond.Broadcast()
		pc.mu.Unlock()
		from.Close()
		to.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			pc.mu.Lock()
			if !down && len(pc.info.FirstBytes) < 4096 {
				pc.info.FirstBytes = append(pc.info.FirstBytes, buf[:n]...)
			}
			for down && pc.frozen && !pc.closed {
				pc.cond.Wait()
			}
			closed := pc.closed
			pc.mu.Unlock()
			if closed {
				return
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a closed connection
		}
	}
}

// Freeze stops delivering server bytes to every open connection for which
// match returns true, and returns how many it froze. The connections stay
// open; commands sent on them still reach the server.
func (p *Proxy) Freeze(match func(c ProxyConn) bool) int {
	p.mu.Lock()
	conns := append([]*proxyConn(nil), p.conns...)
	p.mu.Unlock()
	n := 0
	for _, pc := range conns {
		pc.mu.Lock()
		if !pc.closed && match(pc.info) {
			pc.frozen = true
			n++
		}
		pc.mu.Unlock()
	}
	return n
}

// Close stops the proxy and every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	conns := p.conns
	p.mu.Unlock()
	for _, pc := range conns {
		pc.mu.Lock()
		pc.closed = true
		pc.cond.Broadcast()
		pc.mu.Unlock()
		pc.client.Close()
		pc.up.Close()
	}
	p.wg.Wait()
}
