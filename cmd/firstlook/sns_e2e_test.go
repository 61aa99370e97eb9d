package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/sns/snstest"
)

// TestServeSNS: a CloudWatch alarm through SNS to a running serve: the
// subscription is confirmed by serve itself, the ALARM's InstanceId names
// the host (here an inventory alias; with inventory.ec2, the instance),
// and the run's bundle comes from that host behind the bastion; a forged
// message stores nothing. About 3 s.
func TestServeSNS(t *testing.T) {
	const topic, instance = "arn:aws:sns:us-east-1:123456789012:alarms", "i-0abc1234def567890"
	e := newEnv(t, "web-01", "web-02")
	aws := snstest.New(t)
	// web-02 is the instance.
	var inv strings.Builder
	b := e.net.Bastion()
	bhost, bport, _ := net.SplitHostPort(b.Addr)
	fmt.Fprintf(&inv, "defaults: {user: %s, bastion: %s}\nbastions:\n  - {name: %s, address: %s, port: %s}\nhosts:\n", b.User, b.Name, b.Name, bhost, bport)
	for _, h := range e.net.Hosts() {
		a, p, _ := net.SplitHostPort(h.Addr)
		alias := ""
		if h.Name == "web-02" {
			alias = ", aliases: [" + instance + "]"
		}
		fmt.Fprintf(&inv, "  - {name: %s, address: %s, port: %s, user: %s%s}\n", h.Name, a, p, h.User, alias)
	}
	e.write("inventory.yaml", inv.String())
	e.write("playbooks-sns.yaml", "name: cpu\nmatch: {labels: {namespace: AWS/EC2}}\ntimeout: 30s\nsteps:\n  - name: hostname\n    run: hostname\n")
	cfg, _ := os.ReadFile(e.cfgPath)
	e.write("firstlook.yaml", strings.Replace(string(cfg), "playbooks:\n  paths: [", "playbooks:\n  paths: [playbooks-sns.yaml, ", 1)+"sns:\n  topic_arns: ["+topic+"]\n")
	c, err := LoadConfig(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	url, stop := startServe(t, ServeOptions{Config: c, Log: slog.New(slog.NewTextHandler(&testLog{t: t}, nil)), SourceClient: aws.Client})
	t.Cleanup(func() { _ = stop() })
	e.url = url

	post := func(m *snstest.Message) (int, hooks.Reply) {
		t.Helper()
		r := snstest.Request(m)
		req, _ := http.NewRequest(http.MethodPost, url+"/hooks/sns", bytes.NewReader(m.Body()))
		req.Header = r.Header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var reply hooks.Reply
		_ = json.Unmarshal(raw, &reply)
		return resp.StatusCode, reply
	}

	confirm := &snstest.Message{
		Type: "SubscriptionConfirmation", MessageID: "c-1", Token: "tok", TopicArn: topic, Message: "confirm",
		SubscribeURL: "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + topic + "&Token=tok",
		Timestamp:    time.Now().UTC().Format(time.RFC3339Nano), SignatureVersion: "1", SigningCertURL: snstest.CertURL,
	}
	aws.Sign(t, confirm)
	if code, reply := post(confirm); code != http.StatusOK || reply.Status != "confirmed" || len(aws.Confirmed()) != 1 {
		t.Fatalf("confirmation: got %d %+v, confirmed %v", code, reply, aws.Confirmed())
	}

	alarm := aws.Notification(t, topic, "m-1", snstest.Alarm("cpu-high", "ALARM", instance, "2026-12-04T10:00:00.000+0000"))
	forged := *alarm
	forged.MessageID = "m-forged"
	if code, _ := post(&forged); code != http.StatusUnauthorized {
		t.Errorf("forged: got %d, want 401", code)
	}
	if code, reply := post(alarm); code != http.StatusAccepted || reply.Status != "queued" {
		t.Fatalf("alarm: got %d %+v", code, reply)
	}
	bs := e.waitSource("sns", 1)
	m := bs[0].Manifest
	if m.Host.Name != "web-02" || m.Status != evidence.StatusOK || strings.TrimSpace(stdout(bs[0], 0)) != "web-02" {
		t.Fatalf("got %s on %s: %s (%s), want cpu on web-02 ok", m.Playbook.Name, m.Host.Name, m.Status, m.Error)
	}
	// SNS's retry of the same message makes no second run.
	if code, reply := post(alarm); code != http.StatusAccepted || reply.Status != "duplicate" {
		t.Errorf("retry: got %d %+v, want 202 duplicate", code, reply)
	}
}
