package mackerel_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/hookstest"
	"github.com/firstlook/firstlook/hooks/mackerel"
)

const token = "0123456789abcdef-token"

func newSource(t *testing.T) *mackerel.Webhooks {
	t.Helper()
	src, err := mackerel.New(mackerel.Config{}, []string{"old-0123456789abcdef", token}, []hooks.BasicAuth{{Username: "mackerel", Password: "p4ssw0rd"}})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func request(path string, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func withBasic(r *http.Request, user, pw string) *http.Request {
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pw)))
	return r
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestContract(t *testing.T) {
	good := hookstest.Fixture(t, "mackerel", "alert-host-critical.docs.json")
	hookstest.Run(t, hookstest.Case{
		Source:  newSource(t),
		Request: func(_ testing.TB, body []byte) *http.Request { return request("/hooks/mackerel/"+token, body) },
		Good:    good,
		Forged: map[string]*http.Request{
			"no token":       request("/hooks/mackerel", good),
			"empty token":    request("/hooks/mackerel/", good),
			"wrong token":    request("/hooks/mackerel/0123456789abcdef-tokeN", good),
			"token prefix":   request("/hooks/mackerel/0123456789abcdef-toke", good),
			"token too deep": request("/hooks/mackerel/x/"+token, good),
			"wrong password": withBasic(request("/hooks/mackerel", good), "mackerel", "nope"),
			// Basic auth that is wrong is refused even with a good token.
			"wrong basic, good token": withBasic(request("/hooks/mackerel/"+token, good), "mackerel", "nope"),
		},
		Bad: map[string]hookstest.BadBody{
			"not json":      {Body: []byte("event=alert"), Reason: "not a Mackerel webhook"},
			"no event":      {Body: []byte(`{"alert":{"id":"x"}}`), Reason: "no event"},
			"alert no id":   {Body: []byte(`{"event":"alert","alert":{"status":"critical","isOpen":true}}`), Reason: "alert.id"},
			"event object":  {Body: []byte(`{"event":{"type":"alert"}}`), Reason: "not a Mackerel webhook"},
			"isOpen string": {Body: []byte(`{"event":"alert","alert":{"id":"a","isOpen":"yes"}}`), Reason: "not a Mackerel webhook"},
		},
	})
}

func TestBasicAuth(t *testing.T) {
	good := hookstest.Fixture(t, "mackerel", "alert-host-critical.docs.json")
	for _, r := range []*http.Request{
		withBasic(request("/hooks/mackerel", good), "mackerel", "p4ssw0rd"),
		request("/hooks/mackerel/old-0123456789abcdef", good),
		hookstest.MackerelRequest(good, token),
	} {
		if code, reply := hookstest.Serve(t, newSource(t), &hookstest.Queue{}, r); code != http.StatusAccepted || reply.Status != "queued" {
			t.Errorf("%s: got %d %+v, want 202 queued", r.URL.Path, code, reply)
		}
	}
}

func TestNeedsCredentials(t *testing.T) {
	if _, err := mackerel.New(mackerel.Config{}, []string{""}, nil); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Errorf("got %v, want a no-credentials error", err)
	}
	for _, tok := range []string{"short", "0123456789abcdef/x"} {
		if _, err := mackerel.New(mackerel.Config{}, []string{tok}, nil); err == nil || !strings.Contains(err.Error(), "tokens[0]") {
			t.Errorf("%q: got %v, want a token error", tok, err)
		}
	}
	if _, err := mackerel.New(mackerel.Config{}, nil, []hooks.BasicAuth{{Username: "u"}}); err == nil || !strings.Contains(err.Error(), "basic_auth[0]") {
		t.Errorf("got %v, want a basic_auth error", err)
	}
}

func TestEvents(t *testing.T) {
	critical := hookstest.Fixture(t, "mackerel", "alert-host-critical.docs.json")
	unknown := bytes.Replace(critical, []byte(`"status": "critical"`), []byte(`"status": "unknown"`), 1)
	tests := []struct {
		name   string
		body   []byte
		status string
		stored int
		solved int
	}{
		{"critical open", critical, "queued", 1, 0},
		{"ok closed", fixture(t, "alert-host-ok-closed.json"), "resolved", 0, 1},
		{"critical closed", bytes.Replace(critical, []byte(`"isOpen": true`), []byte(`"isOpen": false`), 1), "resolved", 0, 1},
		{"service warning", fixture(t, "alert-service-warning.json"), "queued", 1, 0},
		{"unknown status", unknown, "ignored", 0, 0},
		{"alert group", fixture(t, "alert-group.json"), "ignored", 0, 0},
		{"host retired", []byte(`{"event":"hostRetire","host":{"name":"app01"}}`), "ignored", 0, 0},
		{"host status", []byte(`{"event":"hostStatus","host":{"name":"app01","status":"poweroff"}}`), "ignored", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := &hookstest.Queue{}
			code, reply := hookstest.Serve(t, newSource(t), q, request("/hooks/mackerel/"+token, tc.body))
			if code != http.StatusAccepted || reply.Status != tc.status || len(q.Stored) != tc.stored || len(q.Resolved) != tc.solved {
				t.Errorf("got %d %+v, %d stored, %d resolved; want 202 %s, %d, %d", code, reply, len(q.Stored), len(q.Resolved), tc.status, tc.stored, tc.solved)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tr, err := mackerel.Parse(hookstest.Fixture(t, "mackerel", "alert-host-critical.docs.json"))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Event != mackerel.EventAlert || tr.Incident.ID != "2bj..." || tr.Incident.Service.Name != "Service" || tr.Incident.Title != "MonitorName on app01: MetricName 2.26 > 1.96" {
		t.Errorf("got %+v", tr)
	}
	if !reflect.DeepEqual(tr.Hints, hooks.Hints{Names: []string{"app01"}}) {
		t.Errorf("got hints %+v", tr.Hints)
	}
	want := map[string]string{"monitor": "MonitorName", "role": "Service: Role", "roles": "Service: Role", "type": "host", "status": "critical", "trigger": "monitoring"}
	if !reflect.DeepEqual(tr.Labels, want) {
		t.Errorf("got labels %v, want %v", tr.Labels, want)
	}
	ok, err := mackerel.Parse(fixture(t, "alert-host-ok-closed.json"))
	if err != nil || ok.Incident.ID != tr.Incident.ID || ok.DeliveryID == tr.DeliveryID || ok.Labels["trigger"] != "monitoring" {
		t.Errorf("ok: got %+v, %v", ok, err)
	}
	sv, err := mackerel.Parse(fixture(t, "alert-service-warning.json"))
	if err != nil || !sv.Hints.Empty() || sv.Incident.Service.Name != "Service" {
		t.Errorf("service alert: got %+v, %v", sv, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(hookstest.Fixture(f, "mackerel", "alert-host-critical.docs.json"))
	f.Add(fixture(f, "alert-group.json"))
	f.Add([]byte(`{"event":"alert","alert":{"id":"a","status":"critical","isOpen":true,"openedAt":1e300},"host":{"name":"::1","roles":[{}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tr, err := mackerel.Parse(body)
		if err != nil {
			return
		}
		if tr.Event == mackerel.EventAlert || tr.Event == mackerel.EventResolved {
			if tr.Incident.ID == "" || tr.DeliveryID == "" {
				t.Fatalf("accepted an incomplete trigger: %+v", tr)
			}
		}
	})
}

// FuzzParseAgrees: the fast decoder and encoding/json give the same
// Trigger, or both refuse, for any body.
func FuzzParseAgrees(f *testing.F) {
	f.Add(hookstest.Fixture(f, "mackerel", "alert-host-critical.docs.json"))
	for _, name := range []string{"alert-group.json", "alert-service-warning.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"event":"alert","alert":{"id":"a","status":"critical","isOpen":true,"openedAt":1e300,"statusChangedAt":"1"},"host":{"name":"::1","roles":[{}]}}`))
	f.Add([]byte(`{"event":"alert","Alert":{"ID":"a","status":"ok","isOpen":false,"openedAt":-0.5},"host":{"name":"h\ud800"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ferr := mackerel.Parse(body)
		var std hooks.Trigger
		var serr error
		mackerel.WithStdlibJSON(func() { std, serr = mackerel.Parse(body) })
		if (ferr == nil) != (serr == nil) {
			t.Fatalf("decoders disagree on %q: fast %v, encoding/json %v", body, ferr, serr)
		}
		fj, _ := json.Marshal(fast)
		sj, _ := json.Marshal(std)
		if !bytes.Equal(fj, sj) {
			t.Fatalf("decoders disagree on %q:\nfast %s\nstd  %s", body, fj, sj)
		}
	})
}
