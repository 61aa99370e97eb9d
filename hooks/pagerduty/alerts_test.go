package pagerduty_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/hookstest"
	"github.com/firstlook/firstlook/hooks/pagerduty"
)

// alertsBody is a listIncidentAlerts response in the documented shape:
// one alert from the Events API v2 (cef_details) and one from an
// integration that put the host in custom details.
const alertsBody = `{"alerts":[
 {"id":"PT4KHLK","type":"alert","status":"triggered","body":{"type":"alert_body",
  "cef_details":{"source_origin":"web-1","details":{"hostname":"web-1.prod.example.com"}},
  "details":{"host":"10.1.0.12","instance":"i-0abc1234def567890","ignored":"db-9"}}},
 {"id":"PT4KHLL","type":"alert","status":"triggered","body":{"type":"alert_body","details":{"host":"web-1"}}},
 {"id":"PT4KHLM","type":"alert","status":"triggered","body":null}
],"limit":100,"offset":0,"more":false}`

func TestAlertsHints(t *testing.T) {
	var gotPath, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotAuth = r.URL.Path+"?"+r.URL.RawQuery, r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(alertsBody))
	}))
	defer srv.Close()
	a := pagerduty.NewAlerts(pagerduty.Config{APIURL: srv.URL}, "tok-123")
	h, err := a.Hints(context.Background(), hooks.Trigger{Source: "pagerduty", Incident: hooks.Incident{ID: "Q2CKYRLH85UNN4"}})
	if err != nil {
		t.Fatal(err)
	}
	want := hooks.Hints{
		Names:       []string{"web-1", "web-1.prod.example.com"},
		IPs:         []string{"10.1.0.12"},
		InstanceIDs: []string{"i-0abc1234def567890"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("got %+v, want %+v", h, want)
	}
	if !strings.HasPrefix(gotPath, "/incidents/Q2CKYRLH85UNN4/alerts?") || !strings.Contains(gotPath, "limit=100") {
		t.Errorf("got request %s, want /incidents/Q2CKYRLH85UNN4/alerts?limit=100", gotPath)
	}
	if gotAuth != "Token token=tok-123" {
		t.Errorf("got Authorization %q", gotAuth)
	}
}

func TestAlertsOtherSource(t *testing.T) {
	a := pagerduty.NewAlerts(pagerduty.Config{APIURL: "http://127.0.0.1:1"}, "tok")
	h, err := a.Hints(context.Background(), hooks.Trigger{Source: "alertmanager"})
	if err != nil || !h.Empty() {
		t.Fatalf("got %+v, %v; want nothing for another source", h, err)
	}
}

func TestAlertsError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"Invalid Token"}}`, http.StatusUnauthorized)
	}))
	defer srv.Close()
	a := pagerduty.NewAlerts(pagerduty.Config{APIURL: srv.URL}, "bad")
	_, err := a.Hints(context.Background(), hooks.Trigger{Source: "pagerduty", Incident: hooks.Incident{ID: "X"}})
	if err == nil || !strings.Contains(err.Error(), "list alerts of X") {
		t.Fatalf("got %v, want a list alerts error", err)
	}
	if strings.Contains(err.Error(), "bad") && strings.Contains(err.Error(), "token=bad") {
		t.Fatalf("error shows the token: %v", err)
	}
}

// alarmMessage returns the alarm JSON (the SNS Message string) of a
// cloudwatch-sns fixture: top-level Message in the SNS HTTP bodies,
// Records[0].Sns.Message in the Lambda-wrapped ones.
func alarmMessage(t *testing.T, name string) string {
	t.Helper()
	var n struct {
		Message string
		Records []struct{ Sns struct{ Message string } }
	}
	if err := json.Unmarshal(hookstest.Fixture(t, "cloudwatch-sns", name), &n); err != nil {
		t.Fatal(err)
	}
	if len(n.Records) > 0 {
		return n.Records[0].Sns.Message
	}
	return n.Message
}

// parsed decodes JSON text, as PagerDuty's integration does with Message.
func parsed(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAlertsCloudWatch(t *testing.T) {
	// AWS's sample alarms name their instance "TestInstance", which is no
	// instance id; the tests substitute real-looking ids at run time (the
	// fixtures are read, not copied).
	const single, multi = "i-0123456789abcdef0", "i-0fedcba9876543210"
	singleMsg := strings.ReplaceAll(alarmMessage(t, "lambda-sns-event.alarm-single-metric.aws-lambda-go.json"), "TestInstance", single)
	multiMsg := strings.ReplaceAll(alarmMessage(t, "lambda-sns-event.alarm-multiple-metrics.aws-lambda-go.json"), "TestInstance", multi)
	lambdaRecord := parsed(t, strings.ReplaceAll(string(hookstest.Fixture(t, "cloudwatch-sns", "lambda-sns-event.alarm-single-metric.aws-lambda-go.json")), "TestInstance", single))
	s3Notification := parsed(t, string(hookstest.Fixture(t, "cloudwatch-sns", "notification-alarm.json")))
	if !strings.Contains(singleMsg, single) || !strings.Contains(multiMsg, multi) {
		t.Fatal("the fixtures no longer carry an InstanceId dimension of TestInstance")
	}

	tests := []struct {
		name string
		body map[string]any // the alert's body
		want hooks.Hints
	}{
		{"details hold the parsed alarm", map[string]any{"details": parsed(t, singleMsg)},
			hooks.Hints{InstanceIDs: []string{single}}},
		{"cef_details.details hold a metric-math alarm", map[string]any{"cef_details": map[string]any{"details": parsed(t, multiMsg)}},
			hooks.Hints{InstanceIDs: []string{multi}}},
		{"Message is still the JSON string", map[string]any{"details": map[string]any{"Type": "Notification", "Message": singleMsg}},
			hooks.Hints{InstanceIDs: []string{single}}},
		{"Message is an object", map[string]any{"details": map[string]any{"Message": parsed(t, multiMsg)}},
			hooks.Hints{InstanceIDs: []string{multi}}},
		{"details are the alarm as a string", map[string]any{"details": singleMsg},
			hooks.Hints{InstanceIDs: []string{single}}},
		{"a forwarded Lambda SNS event", map[string]any{"details": map[string]any{"event": lambdaRecord}},
			hooks.Hints{InstanceIDs: []string{single}}},
		{"CloudWatch API spelling of dimensions", map[string]any{"details": map[string]any{"Trigger": map[string]any{
			"Dimensions": []any{map[string]any{"Name": "InstanceId", "Value": multi}}}}},
			hooks.Hints{InstanceIDs: []string{multi}}},
		{"host keys are still read beside the alarm", map[string]any{"details": map[string]any{"host": "web-1", "Message": singleMsg}},
			hooks.Hints{Names: []string{"web-1"}, InstanceIDs: []string{single}}},
		{"an S3 alarm names no instance", map[string]any{"details": s3Notification},
			hooks.Hints{}},
		{"TestInstance is no instance id", map[string]any{"details": map[string]any{"Message": alarmMessage(t, "lambda-sns-event.alarm-single-metric.aws-lambda-go.json")}},
			hooks.Hints{}},
		{"the same instance twice is one hint", map[string]any{"details": parsed(t, singleMsg), "cef_details": map[string]any{"details": map[string]any{"Message": singleMsg}}},
			hooks.Hints{InstanceIDs: []string{single}}},
		{"other dimensions are not hints", map[string]any{"details": map[string]any{"Trigger": map[string]any{
			"Dimensions": []any{map[string]any{"name": "AutoScalingGroupName", "value": "i-0123456789abcdef1"}}}}},
			hooks.Hints{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, err := json.Marshal(map[string]any{"alerts": []any{map[string]any{"id": "PT4KHLK", "type": "alert", "body": tc.body}}, "limit": 100, "more": false})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(body)
			}))
			defer srv.Close()
			a := pagerduty.NewAlerts(pagerduty.Config{APIURL: srv.URL}, "tok")
			got, err := a.Hints(context.Background(), hooks.Trigger{Source: "pagerduty", Incident: hooks.Incident{ID: "Q1"}})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAlertsCloudWatchBounded(t *testing.T) {
	// An alarm nested deeper than any delivery puts it is not searched
	// for: the walk over attacker-influenced details stays bounded.
	var deep any = map[string]any{"Trigger": map[string]any{"Dimensions": []any{map[string]any{"name": "InstanceId", "value": "i-0123456789abcdef0"}}}}
	for range 20 {
		deep = map[string]any{"x": deep}
	}
	body, _ := json.Marshal(map[string]any{"alerts": []any{map[string]any{"body": map[string]any{"details": deep}}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	defer srv.Close()
	h, err := pagerduty.NewAlerts(pagerduty.Config{APIURL: srv.URL}, "tok").Hints(context.Background(), hooks.Trigger{Source: "pagerduty", Incident: hooks.Incident{ID: "Q1"}})
	if err != nil || !h.Empty() {
		t.Errorf("got %+v, %v; want no hint from 20 levels down", h, err)
	}
}
