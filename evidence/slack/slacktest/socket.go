package slacktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Socket Mode (https://docs.slack.dev/apis/events-api/using-socket-mode):
// the app calls apps.connections.open with an app-level token (xapp-…,
// scope connections:write) and gets a single-use websocket URL; Slack says
// hello on the socket, then sends envelopes ({"envelope_id", "type",
// "payload", "accepts_response_payload"}) that the app must acknowledge
// with {"envelope_id", "payload"?} within three seconds. Slack pings the
// socket; slack-go reconnects when no ping comes for 30 seconds, so the
// fake pings every PingInterval.

// AppToken is an app-level token the fake accepts for apps.connections.open.
const AppToken = "xapp-1-A0FIRSTLK-0000-slacktest"

// PingInterval is how often the fake pings each socket.
const PingInterval = 5 * time.Second

// Ack is an app's acknowledgement of one envelope.
type Ack struct {
	EnvelopeID string          `json:"envelope_id"`
	Payload    json.RawMessage `json:"payload,omitempty"`
}

// socketState is the Socket Mode half of the fake.
type socketState struct {
	mu      sync.Mutex
	tickets map[string]bool // unused websocket tickets
	conns   []*socketConn
	changed chan struct{} // closed and replaced when conns changes
}

type socketConn struct {
	ws      *websocket.Conn
	writeMu sync.Mutex
	acks    chan Ack
	closed  chan struct{}
}

func (s *Server) sockets() *socketState {
	s.socketOnce.Do(func() {
		s.socket = &socketState{tickets: map[string]bool{}, changed: make(chan struct{})}
	})
	return s.socket
}

// appsConnectionsOpen follows
// https://docs.slack.dev/reference/methods/apps.connections.open: an
// app-level token only (not_allowed_token_type otherwise).
func (s *Server) appsConnectionsOpen(c *call) *apiError {
	if e := s.need(c, "connections:write"); e != nil {
		return e
	}
	ticket := strings.ToLower(s.newID("t"))
	ss := s.sockets()
	ss.mu.Lock()
	ss.tickets[ticket] = true
	ss.mu.Unlock()
	c.r["url"] = "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/link/?ticket=" + ticket + "&app_id=" + AppID
	return nil
}

// upgrader accepts slack-go's handshake, which claims Origin
// https://api.slack.com as Slack's own clients do.
var upgrader = websocket.Upgrader{CheckOrigin: func(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o == "" || o == "https://api.slack.com"
}}

// serveSocket is the websocket end of a ticket from apps.connections.open.
func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	ss := s.sockets()
	ticket := r.URL.Query().Get("ticket")
	ss.mu.Lock()
	ok := ss.tickets[ticket]
	delete(ss.tickets, ticket) // single use
	ss.mu.Unlock()
	if !ok {
		http.Error(w, "invalid ticket", http.StatusUnauthorized)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	sc := &socketConn{ws: ws, acks: make(chan Ack, 16), closed: make(chan struct{})}
	ss.mu.Lock()
	n := len(ss.conns) + 1
	ss.mu.Unlock()
	hello := map[string]any{
		"type": "hello", "num_connections": n,
		"debug_info":      map[string]any{"host": "applink-slacktest", "approximate_connection_time": 18060},
		"connection_info": map[string]any{"app_id": AppID},
	}
	if err := sc.write(hello); err != nil {
		ws.Close()
		return
	}
	ss.mu.Lock()
	ss.conns = append(ss.conns, sc)
	close(ss.changed)
	ss.changed = make(chan struct{})
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		for i, c := range ss.conns {
			if c == sc {
				ss.conns = append(ss.conns[:i], ss.conns[i+1:]...)
				break
			}
		}
		close(ss.changed)
		ss.changed = make(chan struct{})
		ss.mu.Unlock()
		close(sc.closed)
		ws.Close()
	}()
	stopPing := make(chan struct{})
	defer close(stopPing)
	go func() {
		t := time.NewTicker(PingInterval)
		defer t.Stop()
		for {
			sc.ping()
			select {
			case <-stopPing:
				return
			case <-t.C:
			}
		}
	}()
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var a Ack
		if json.Unmarshal(msg, &a) == nil && a.EnvelopeID != "" {
			select {
			case sc.acks <- a:
			default:
			}
		}
	}
}

func (c *socketConn) write(v any) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteJSON(v)
}

func (c *socketConn) ping() {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.WriteControl(websocket.PingMessage, []byte("slacktest"), time.Now().Add(10*time.Second))
}

// WaitSocket waits until an app has a Socket Mode connection open.
func (s *Server) WaitSocket(ctx context.Context) error {
	ss := s.sockets()
	for {
		ss.mu.Lock()
		n, ch := len(ss.conns), ss.changed
		ss.mu.Unlock()
		if n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for a socket mode connection: %w", ctx.Err())
		case <-ch:
		}
	}
}

// ErrNoSocket is Send's error when no app is connected.
var ErrNoSocket = errors.New("slacktest: no socket mode connection")

// SendEnvelope sends an envelope of type typ ("slash_commands",
// "interactive", "events_api") with payload over the newest connection and
// returns the app's acknowledgement, or ctx's error if none comes.
func (s *Server) SendEnvelope(ctx context.Context, typ string, payload any) (Ack, error) {
	ss := s.sockets()
	ss.mu.Lock()
	if len(ss.conns) == 0 {
		ss.mu.Unlock()
		return Ack{}, ErrNoSocket
	}
	sc := ss.conns[len(ss.conns)-1]
	id := strings.ToLower(s.newIDLocked("e"))
	ss.mu.Unlock()
	env := map[string]any{
		"envelope_id": id, "type": typ, "payload": payload,
		"accepts_response_payload": typ == "slash_commands",
	}
	if err := sc.write(env); err != nil {
		return Ack{}, fmt.Errorf("slacktest: send envelope: %w", err)
	}
	for {
		select {
		case a := <-sc.acks:
			if a.EnvelopeID == id {
				return a, nil
			}
		case <-sc.closed:
			return Ack{}, errors.New("slacktest: the app closed the socket before acknowledging")
		case <-ctx.Done():
			return Ack{}, fmt.Errorf("slacktest: no ack for envelope %s: %w", id, ctx.Err())
		}
	}
}

// newIDLocked is newID for callers that do not hold s.mu.
func (s *Server) newIDLocked(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newID(prefix)
}

// CloseSockets closes every Socket Mode connection, as Slack does when it
// refreshes them; slack-go then reconnects.
func (s *Server) CloseSockets() {
	ss := s.sockets()
	ss.mu.Lock()
	conns := append([]*socketConn(nil), ss.conns...)
	ss.mu.Unlock()
	for _, c := range conns {
		c.ws.Close()
	}
}
