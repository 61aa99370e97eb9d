package ec2_test

// The common AWS path, end to end: a CloudWatch alarm reaches PagerDuty
// through SNS, firstlook gets the incident's webhook, reads the incident's
// alerts from the REST API, takes the alarm's InstanceId dimension as a
// hint and resolves it, static inventory first and EC2 next, to the
// instance's private address and the bastion of its subnet.
//
// It lives here, in the ec2 black-box tests, because this package may
// import everything the path needs without a cycle: hooks/pagerduty (and
// hookstest) know nothing of the runner, runner/inventory knows nothing of
// hooks, and the fake EC2 is internal to this package. The runner's own
// Plan does exactly the hints-then-Resolve step below (runner/plan.go);
// it is left out so that this test does not depend on the runner's
// other parts.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/hookstest"
	"github.com/firstlook/firstlook/hooks/pagerduty"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/inventory/ec2"
	"github.com/firstlook/firstlook/runner/inventory/ec2/internal/ec2test"
)

// decode parses JSON text into a generic value, failing the test.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// lambdaAlarm is the alarm JSON (the SNS Message) of one of AWS's
// Lambda-wrapped sample events, with its sample instance name replaced by
// id: the fixture is read here and changed in memory, not copied.
func lambdaAlarm(t *testing.T, fixture, id string) string {
	t.Helper()
	ev := decode(t, hookstest.Fixture(t, "cloudwatch-sns", fixture))
	msg := ev["Records"].([]any)[0].(map[string]any)["Sns"].(map[string]any)["Message"].(string)
	if !strings.Contains(msg, `"TestInstance"`) {
		t.Fatalf("%s: the sample alarm no longer has an InstanceId of TestInstance", fixture)
	}
	return strings.ReplaceAll(msg, `"TestInstance"`, `"`+id+`"`)
}

func TestCloudWatchAlarmToHost(t *testing.T) {
	const (
		alarmed = "i-0c10c10c10c10c101" // the alarm's instance: running
		stopped = "i-0c10c10c10c10c102" // named by a second alarm: stopped since
		subnet  = "subnet-0c10c10c10c10c101"
		vpc     = "vpc-0c10c10c10c10c101"
	)

	// The account: the alarmed instance has a public address too, which
	// firstlook must never use.
	ec2test.Setenv(t)
	fake := ec2test.New(t,
		ec2test.Instance{ID: alarmed, PrivateIP: "10.20.0.15", PublicIP: "198.51.100.15", SubnetID: subnet, VpcID: vpc, Tags: map[string]string{"Name": "batch-7", "env": "prod"}},
		ec2test.Instance{ID: stopped, State: "stopped", PrivateIP: "10.20.0.16", SubnetID: subnet, VpcID: vpc, Tags: map[string]string{"Name": "batch-8", "env": "prod"}},
	)

	// The static inventory defines the bastions (and a host of its own).
	static, err := inventory.Parse("inventory.yaml", []byte(`
defaults: {user: ops}
bastions:
  - {name: bastion-prod, address: 192.0.2.10, user: jump}
  - {name: bastion-batch, address: 192.0.2.20, user: jump}
hosts:
  - {name: web-1, address: 10.1.0.11, bastion: bastion-prod}
`))
	if err != nil {
		t.Fatal(err)
	}
	src, err := ec2.New(context.Background(), ec2.Config{
		Region:   ec2test.Region,
		Endpoint: fake.URL,
		Filters:  map[string][]string{"tag:env": {"prod"}},
		Bastions: ec2.BastionsConfig{
			VPC:     map[string]string{vpc: "bastion-prod"},
			Subnet:  map[string]string{subnet: "bastion-batch"},
			Default: "bastion-prod",
		},
		User: "ec2-user",
	}, static.Bastions())
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory.Chain{static, src}

	// PagerDuty's REST API: listIncidentAlerts for the incident. One alert
	// holds the SNS notification (the real capture's envelope) with the
	// EC2 alarm as its Message string; the other holds a metric-math alarm
	// already decoded, in cef_details. (Which of these PagerDuty's
	// CloudWatch integration produces is not documented; hooks/pagerduty
	// reads both.)
	notification := decode(t, hookstest.Fixture(t, "cloudwatch-sns", "notification-alarm.json"))
	notification["Message"] = lambdaAlarm(t, "lambda-sns-event.alarm-single-metric.aws-lambda-go.json", alarmed)
	metricMath := decode(t, []byte(lambdaAlarm(t, "lambda-sns-event.alarm-multiple-metrics.aws-lambda-go.json", stopped)))
	alerts, err := json.Marshal(map[string]any{
		"alerts": []any{
			map[string]any{"id": "PCWALARM1", "type": "alert", "status": "triggered", "summary": notification["Subject"],
				"body": map[string]any{"type": "alert_body", "details": notification}},
			map[string]any{"id": "PCWALARM2", "type": "alert", "status": "triggered",
				"body": map[string]any{"type": "alert_body", "cef_details": map[string]any{"details": metricMath}}},
		},
		"limit": 100, "offset": 0, "more": false,
	})
	if err != nil {
		t.Fatal(err)
	}

	// The incident comes from the real PagerDuty webhook fixture.
	trigger, err := pagerduty.Parse(hookstest.Fixture(t, "pagerduty-v3", "incident.triggered.json"), "delivery-1")
	if err != nil {
		t.Fatal(err)
	}
	var asked string
	pd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = r.URL.Path
		if r.URL.Path != "/incidents/"+trigger.Incident.ID+"/alerts" || r.Header.Get("Authorization") != "Token token=pd-token" {
			http.Error(w, `{"error":{"message":"Not Found","code":2100}}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(alerts)
	}))
	defer pd.Close()

	hints, err := pagerduty.NewAlerts(pagerduty.Config{APIURL: pd.URL}, "pd-token").Hints(context.Background(), trigger)
	if err != nil {
		t.Fatalf("hints (asked %s): %v", asked, err)
	}
	want := hooks.Hints{InstanceIDs: []string{alarmed, stopped}}
	if len(hints.Names) != 0 || len(hints.IPs) != 0 || strings.Join(hints.InstanceIDs, ",") != strings.Join(want.InstanceIDs, ",") {
		t.Fatalf("got hints %+v, want %+v", hints, want)
	}

	// The alarmed instance: private address, the subnet's bastion.
	host, err := inv.Resolve(context.Background(), hints.InstanceIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	if host.Name != "batch-7" || host.Addr() != "10.20.0.15:22" || host.User != "ec2-user" || host.Bastion == nil ||
		host.Bastion.Name != "bastion-batch" || host.Bastion.Addr() != "192.0.2.20:22" || host.Bastion.User != "jump" {
		t.Errorf("got %s at %s as %s via %+v, want batch-7 at 10.20.0.15:22 as ec2-user via bastion-batch (192.0.2.20:22)", host.Name, host.Addr(), host.User, host.Bastion)
	}

	// The stopped one: refused, with the reason an incident note can show.
	_, err = inv.Resolve(context.Background(), hints.InstanceIDs[1])
	if !errors.Is(err, inventory.ErrUnknownHost) || !strings.Contains(err.Error(), stopped+" is stopped, not running") {
		t.Errorf("got %v, want the stopped instance refused as such", err)
	}

	// The static inventory still answers first.
	if h, err := inv.Resolve(context.Background(), "web-1"); err != nil || h.Bastion == nil || h.Bastion.Name != "bastion-prod" {
		t.Errorf("got %+v, %v; want the static web-1", h, err)
	}
}
