package sns_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/hookstest"
	"github.com/firstlook/firstlook/hooks/sns"
	"github.com/firstlook/firstlook/hooks/sns/snstest"
)

const (
	topic      = "arn:aws:sns:us-east-1:123456789012:alarms"
	fixtureARN = "arn:aws:sns:eu-west-1:1234567890:alerta-test"
	instance   = "i-0abc1234def567890"
)

func newSource(t testing.TB, aws *snstest.AWS, now func() time.Time, topics ...string) *sns.Webhooks {
	t.Helper()
	if len(topics) == 0 {
		topics = []string{topic}
	}
	src, err := sns.New(sns.Config{TopicARNs: topics}, sns.Options{HTTPClient: aws.Client, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func alarm(aws *snstest.AWS, t testing.TB, id, state string) *snstest.Message {
	return aws.Notification(t, topic, id, snstest.Alarm("cpu-high", state, instance, "2026-12-04T10:00:00.000+0000"))
}

func TestContract(t *testing.T) {
	aws := snstest.New(t)
	good := alarm(aws, t, "m-1", "ALARM")
	resign := func(f func(m *snstest.Message)) *http.Request {
		m := *good
		f(&m)
		aws.Sign(t, &m)
		return snstest.Request(&m)
	}
	tampered := *good
	tampered.Message = strings.Replace(tampered.Message, instance, "i-0000000000000000f", 1)
	hookstest.Run(t, hookstest.Case{
		Source: newSource(t, aws, nil),
		Request: func(_ testing.TB, body []byte) *http.Request {
			return snstest.RequestBody(snstest.Request(good), body)
		},
		Good: good.Body(),
		Forged: map[string]*http.Request{
			"tampered message": snstest.Request(&tampered),
			"unknown version":  resign(func(m *snstest.Message) { m.SignatureVersion = "3" }),
			"http cert URL":    resign(func(m *snstest.Message) { m.SigningCertURL = strings.Replace(snstest.CertURL, "https:", "http:", 1) }),
			"other host":       resign(func(m *snstest.Message) { m.SigningCertURL = "https://sns.example.com/SimpleNotificationService-1.pem" }),
			"suffix host": resign(func(m *snstest.Message) {
				m.SigningCertURL = "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-1.pem"
			}),
			"userinfo": resign(func(m *snstest.Message) {
				m.SigningCertURL = "https://x@sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem"
			}),
			"port": resign(func(m *snstest.Message) {
				m.SigningCertURL = "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-1.pem"
			}),
			"s3 host": resign(func(m *snstest.Message) {
				m.SigningCertURL = "https://s3.us-east-1.amazonaws.com/SimpleNotificationService-1.pem"
			}),
			"not pem":              resign(func(m *snstest.Message) { m.SigningCertURL = "https://sns.us-east-1.amazonaws.com/?Action=x" }),
			"expired cert":         resign(func(m *snstest.Message) { m.SigningCertURL = snstest.ExpiredCertURL }),
			"ecdsa cert":           resign(func(m *snstest.Message) { m.SigningCertURL = snstest.ECDSACertURL }),
			"signature not base64": withSignature(good, "!!not base64!!"),
			"signature of another": withSignature(good, alarm(aws, t, "m-9", "ALARM").Signature),
			"old timestamp":        resign(func(m *snstest.Message) { m.Timestamp = "2019-02-15T23:53:45.134Z" }),
			"subject added":        withSubject(good, "other"),
			"subject dropped":      withSubject(good, ""),
		},
		Bad: map[string]hookstest.BadBody{
			"not json":      {Body: []byte("Type=Notification"), Reason: "not an SNS message"},
			"no topic":      {Body: []byte(`{"Type":"Notification","MessageId":"x"}`), Reason: "no Type, MessageId or TopicArn"},
			"message array": {Body: []byte(`{"Type":"Notification","MessageId":"x","TopicArn":"` + topic + `","Message":[1]}`), Reason: "not an SNS message"},
		},
	})
}

// withSubject changes a signed message's Subject without re-signing: the
// Subject is part of what is signed.
func withSubject(m *snstest.Message, s string) *http.Request {
	c := *m
	if s == "" {
		c.Subject = nil
	} else {
		c.Subject = &s
	}
	return snstest.Request(&c)
}

func withSignature(m *snstest.Message, sig string) *http.Request {
	c := *m
	c.Signature = sig
	return snstest.Request(&c)
}

func TestSignatureVersions(t *testing.T) {
	aws := snstest.New(t)
	src := newSource(t, aws, nil)
	for _, v := range []string{"1", "2"} {
		m := alarm(aws, t, "m-v"+v, "ALARM")
		m.SignatureVersion = v
		m.Subject = nil // no Subject: left out of what is signed
		aws.Sign(t, m)
		if code, reply := hookstest.Serve(t, src, &hookstest.Queue{}, snstest.Request(m)); code != http.StatusAccepted || reply.Status != "queued" {
			t.Errorf("SignatureVersion %s: got %d %+v, want 202 queued", v, code, reply)
		}
		// A version-1 signature presented as version 2 (and back) fails.
		m.SignatureVersion = map[string]string{"1": "2", "2": "1"}[v]
		if code, _ := hookstest.Serve(t, src, &hookstest.Queue{}, snstest.Request(m)); code != http.StatusUnauthorized {
			t.Errorf("SignatureVersion %s relabelled: got %d, want 401", v, code)
		}
	}
	if n := aws.CertFetches(); n != 1 {
		t.Errorf("signing certificate fetched %d times, want once (cached)", n)
	}
}

func TestRefusals(t *testing.T) {
	aws := snstest.New(t)
	src := newSource(t, aws, nil)
	other := aws.Notification(t, "arn:aws:sns:us-east-1:123456789012:other", "m-2", snstest.Alarm("x", "ALARM", instance, "2026-12-04T10:00:00.000+0000"))
	missing := alarm(aws, t, "m-3", "ALARM")
	missing.SigningCertURL = snstest.MissingCertURL
	aws.Sign(t, missing)
	redirect := alarm(aws, t, "m-4", "ALARM")
	redirect.SigningCertURL = snstest.RedirectCertURL
	aws.Sign(t, redirect)
	idHeader := snstest.Request(alarm(aws, t, "m-5", "ALARM"))
	idHeader.Header.Set("x-amz-sns-message-id", "m-other")
	typeHeader := snstest.Request(alarm(aws, t, "m-6", "ALARM"))
	typeHeader.Header.Set("x-amz-sns-message-type", "SubscriptionConfirmation")
	tests := []struct {
		name   string
		r      *http.Request
		code   int
		reason string
	}{
		{"unknown topic", snstest.Request(other), http.StatusForbidden, "not in sns.topic_arns"},
		// The certificate cannot be had: SNS should retry later.
		{"certificate missing", snstest.Request(missing), http.StatusServiceUnavailable, "fetch signing certificate"},
		{"certificate redirect", snstest.Request(redirect), http.StatusServiceUnavailable, "redirect refused"},
		{"message id header", idHeader, http.StatusBadRequest, "x-amz-sns-message-id"},
		{"type header", typeHeader, http.StatusBadRequest, "x-amz-sns-message-type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := &hookstest.Queue{}
			code, reply := hookstest.Serve(t, src, q, tc.r)
			if code != tc.code || !strings.Contains(reply.Reason, tc.reason) || len(q.Stored) != 0 {
				t.Errorf("got %d %+v, %d stored; want %d with %q, nothing stored", code, reply, len(q.Stored), tc.code, tc.reason)
			}
		})
	}
	if _, err := sns.New(sns.Config{}, sns.Options{}); err == nil || !strings.Contains(err.Error(), "topic_arns") {
		t.Errorf("no topics: got %v", err)
	}
	if _, err := sns.New(sns.Config{TopicARNs: []string{"alarms"}}, sns.Options{}); err == nil || !strings.Contains(err.Error(), "topic_arns[0]") {
		t.Errorf("bad topic: got %v", err)
	}
}

func TestSubscriptionConfirmation(t *testing.T) {
	aws := snstest.New(t)
	src := newSource(t, aws, nil, topic)
	confirmation := func(topicARN, subscribeURL string) *snstest.Message {
		m := &snstest.Message{
			Type: "SubscriptionConfirmation", MessageID: "c-1", Token: "2336412f", TopicArn: topicARN,
			Message:      "You have chosen to subscribe to the topic " + topicARN + ".\nTo confirm the subscription, visit the SubscribeURL included in this message.",
			SubscribeURL: subscribeURL, Timestamp: time.Now().UTC().Format(time.RFC3339Nano), SignatureVersion: "1", SigningCertURL: snstest.CertURL,
		}
		aws.Sign(t, m)
		return m
	}
	confirmURL := "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + topic + "&Token=2336412f"
	q := &hookstest.Queue{}
	code, reply := hookstest.Serve(t, src, q, snstest.Request(confirmation(topic, confirmURL)))
	if code != http.StatusOK || reply.Status != "confirmed" {
		t.Fatalf("got %d %+v, want 200 confirmed", code, reply)
	}
	if got := aws.Confirmed(); !reflect.DeepEqual(got, []string{"sns.us-east-1.amazonaws.com " + topic}) {
		t.Errorf("confirmed %v, want the topic confirmed once at its SubscribeURL", got)
	}
	refused := []struct {
		name string
		m    *snstest.Message
		code int
	}{
		{"other topic", confirmation("arn:aws:sns:us-east-1:123456789012:other", strings.Replace(confirmURL, topic, "arn:aws:sns:us-east-1:123456789012:other", 1)), http.StatusForbidden},
		{"subscribe URL elsewhere", confirmation(topic, "https://evil.example/?Action=ConfirmSubscription&TopicArn="+topic), http.StatusBadRequest},
		{"subscribe URL http", confirmation(topic, strings.Replace(confirmURL, "https:", "http:", 1)), http.StatusBadRequest},
		{"subscribe URL other topic", confirmation(topic, strings.Replace(confirmURL, topic, topic+"x", 1)), http.StatusBadRequest},
		{"subscribe URL other action", confirmation(topic, strings.Replace(confirmURL, "ConfirmSubscription", "Unsubscribe", 1)), http.StatusBadRequest},
	}
	for _, tc := range refused {
		if code, reply := hookstest.Serve(t, src, q, snstest.Request(tc.m)); code != tc.code {
			t.Errorf("%s: got %d %+v, want %d", tc.name, code, reply, tc.code)
		}
	}
	// The SubscribeURL is signed: changing it breaks the signature.
	m := confirmation(topic, confirmURL)
	m.SubscribeURL += "&x=1"
	if code, _ := hookstest.Serve(t, src, q, snstest.Request(m)); code != http.StatusUnauthorized {
		t.Errorf("changed SubscribeURL: got %d, want 401", code)
	}
	if got := aws.Confirmed(); len(got) != 1 {
		t.Errorf("confirmed %v, want only the first", got)
	}
}

func TestAlarmStates(t *testing.T) {
	aws := snstest.New(t)
	src := newSource(t, aws, nil)
	q := &hookstest.Queue{}
	tests := []struct {
		state, status string
	}{
		{"ALARM", "queued"},
		{"OK", "resolved"},
		{"INSUFFICIENT_DATA", "ignored"},
	}
	for _, tc := range tests {
		code, reply := hookstest.Serve(t, src, q, snstest.Request(alarm(aws, t, "s-"+tc.state, tc.state)))
		if code != http.StatusAccepted || reply.Status != tc.status {
			t.Errorf("%s: got %d %+v, want 202 %s", tc.state, code, reply, tc.status)
		}
	}
	notAlarm := aws.Notification(t, topic, "n-1", "hello")
	if code, reply := hookstest.Serve(t, src, q, snstest.Request(notAlarm)); code != http.StatusAccepted || reply.Status != "ignored" {
		t.Errorf("not an alarm: got %d %+v, want 202 ignored", code, reply)
	}
	if len(q.Stored) != 1 || len(q.Resolved) != 1 {
		t.Fatalf("got %d stored, %d resolved", len(q.Stored), len(q.Resolved))
	}
	tr := q.Stored[0]
	arn := "arn:aws:cloudwatch:us-east-1:123456789012:alarm:cpu-high"
	if tr.DeliveryID != "s-ALARM" || tr.Alert != arn || tr.Incident.ID != arn+"@2026-12-04T10:00:00.000+0000" || !reflect.DeepEqual(tr.Hints.InstanceIDs, []string{instance}) {
		t.Errorf("got %+v", tr)
	}
	if r := q.Resolved[0]; r.Alert != arn {
		t.Errorf("OK resolves %q, want the alarm %s", r.Alert, arn)
	}
}

// TestCapturedShapes: the real captured SNS bodies (SNS's own layout and
// field order, with a Subject) re-signed with the test key verify and
// parse; as captured (the account id was anonymised, so AWS's signature no
// longer matches) they are refused.
func TestCapturedShapes(t *testing.T) {
	aws := snstest.New(t)
	for _, name := range []string{"notification-alarm.json", "notification-insufficient-data.json", "subscription-confirmation.json"} {
		raw := hookstest.Fixture(t, "cloudwatch-sns", name)
		var m snstest.Message
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		src := newSource(t, aws, nil, fixtureARN)
		captured := snstest.Request(&m)
		snstest.RequestBody(captured, raw)
		if code, reply := hookstest.Serve(t, src, &hookstest.Queue{}, captured); code != http.StatusUnauthorized || !strings.Contains(reply.Reason, "does not verify") {
			t.Errorf("%s as captured: got %d %+v, want 401 does not verify", name, code, reply)
		}
		// The fake endpoint answers for sns.eu-west-1 too; the message
		// is restamped, or it would be too old.
		m.Timestamp = time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
		aws.Sign(t, &m)
		code, reply := hookstest.Serve(t, src, &hookstest.Queue{}, snstest.Request(&m))
		want := map[string]string{"notification-alarm.json": "queued", "notification-insufficient-data.json": "ignored", "subscription-confirmation.json": "confirmed"}[name]
		if code >= 300 || reply.Status != want {
			t.Errorf("%s re-signed: got %d %+v, want %s", name, code, reply, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(hookstest.Fixture(f, "cloudwatch-sns", "notification-alarm.json"))
	f.Add(hookstest.Fixture(f, "cloudwatch-sns", "subscription-confirmation.json"))
	f.Add([]byte(`{"Type":"Notification","MessageId":"m","TopicArn":"t","Message":"{\"AlarmName\":\"a\",\"NewStateValue\":\"ALARM\",\"Trigger\":{\"Metrics\":[{\"MetricStat\":null}]}}"}`))
	src, err := sns.New(sns.Config{TopicARNs: []string{topic}}, sns.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, _ := http.NewRequest(http.MethodPost, "/hooks/sns", nil)
		ts, err := src.Parse(r, body)
		if err != nil {
			return
		}
		for _, tr := range ts {
			if src.Action(tr.Event) != hooks.Ignore && (tr.Incident.ID == "" || tr.DeliveryID == "") {
				t.Fatalf("accepted an incomplete trigger: %+v", tr)
			}
		}
	})
}

// TestCertificateFetchedOnce: a burst of messages at start fetches the
// signing certificate once.
func TestCertificateFetchedOnce(t *testing.T) {
	aws := snstest.New(t)
	src := newSource(t, aws, nil)
	var msgs []*snstest.Message
	for i := range 16 {
		msgs = append(msgs, alarm(aws, t, fmt.Sprintf("burst-%d", i), "ALARM"))
	}
	q := &hookstest.Queue{}
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Go(func() {
			if code, reply := hookstest.Serve(t, src, q, snstest.Request(m)); code != http.StatusAccepted {
				t.Errorf("got %d %+v", code, reply)
			}
		})
	}
	wg.Wait()
	if n := aws.CertFetches(); n != 1 {
		t.Errorf("certificate fetched %d times for a burst, want once", n)
	}
}
