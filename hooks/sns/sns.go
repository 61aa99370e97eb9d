// Package sns is the intake for CloudWatch alarms published to an SNS
// topic with an HTTP(S) subscription (POST /hooks/sns): every message's
// signature is verified, only configured topics are accepted, a
// subscription to one of them is confirmed by firstlook itself, and an
// alarm going to ALARM triggers, to OK resolves.
//
// No maintained Go library verifies SNS signatures, so this package does,
// as AWS documents it:
// https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html
// https://docs.aws.amazon.com/sns/latest/dg/http-header.html
package sns

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/firstlook/firstlook/hooks"
)

// Name is the source's path under /hooks/ and its Trigger.Source.
const Name = "sns"

// Config is the sns section of firstlook.yaml.
type Config struct {
	// TopicARNs are the topics whose messages are accepted (and whose
	// subscriptions firstlook confirms).
	TopicARNs []string `yaml:"topic_arns"`
	// MaxAge refuses messages whose Timestamp is older (default 1h):
	// a captured message cannot be replayed later. SNS retries an HTTP
	// delivery for about 20 s by default.
	MaxAge time.Duration `yaml:"max_age"`
}

var topicARN = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:sns:[a-z0-9-]+:[0-9]{1,12}:[A-Za-z0-9_.-]{1,256}$`)

// Validate reports a configuration that cannot work. No topics is New's
// error: a config without this section is valid.
func (c Config) Validate() error {
	for i, a := range c.TopicARNs {
		if !topicARN.MatchString(a) {
			return fmt.Errorf("topic_arns[%d]: %q is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>)", i, a)
		}
	}
	if c.MaxAge < 0 {
		return fmt.Errorf("max_age: %s is negative", c.MaxAge)
	}
	return nil
}

// Options are New's optional parts.
type Options struct {
	// HTTPClient fetches signing certificates and confirms
	// subscriptions (default: 5 s timeout, no redirects, system roots).
	// Only https URLs on SNS endpoints are ever requested, whatever the
	// client.
	HTTPClient *http.Client
	Log        *slog.Logger
	// Now is the clock for MaxAge and certificate validity.
	Now func() time.Time
}

// Webhooks is the hooks.Source of SNS HTTP(S) subscriptions.
type Webhooks struct {
	topics []string
	maxAge time.Duration
	certs  *certs
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
}

var _ hooks.Source = (*Webhooks)(nil)

// New returns the source; it refuses to start without topics.
func New(cfg Config, opts Options) (*Webhooks, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.TopicARNs) == 0 {
		return nil, errors.New("topic_arns: list the SNS topics that carry your CloudWatch alarms; messages of other topics are refused")
	}
	client := cmp.Or(opts.HTTPClient, newClient())
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := cmp.Or(opts.Log, slog.Default())
	return &Webhooks{
		topics: cfg.TopicARNs,
		maxAge: cmp.Or(cfg.MaxAge, time.Hour),
		certs:  &certs{client: client, now: now, cache: map[string]*x509.Certificate{}},
		client: client,
		log:    log,
		now:    now,
	}, nil
}

// Name is the source's path under /hooks/.
func (s *Webhooks) Name() string { return Name }

// message is the JSON body of every SNS HTTP(S) delivery. It is decoded
// with goccy/go-json, as PagerDuty's webhooks are (hooks/pagerduty): the
// same structs into the same values, several times faster.
type message struct {
	Type             string  `json:"Type"`
	MessageID        string  `json:"MessageId"`
	Token            string  `json:"Token"`
	TopicArn         string  `json:"TopicArn"`
	Subject          *string `json:"Subject"`
	Message          string  `json:"Message"`
	SubscribeURL     string  `json:"SubscribeURL"`
	Timestamp        string  `json:"Timestamp"`
	SignatureVersion string  `json:"SignatureVersion"`
	Signature        string  `json:"Signature"`
	SigningCertURL   string  `json:"SigningCertURL"`
}

func decode(body []byte) (*message, error) {
	var m message
	if err := gojson.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("body is not an SNS message: %v", err)
	}
	if m.Type == "" || m.MessageID == "" || m.TopicArn == "" {
		return nil, errors.New("not an SNS message: no Type, MessageId or TopicArn")
	}
	return &m, nil
}

// Authenticate verifies the message's signature with SNS's signing
// certificate, for a configured topic only, and refuses stale messages.
func (s *Webhooks) Authenticate(r *http.Request, body []byte) error {
	m, err := decode(body)
	if err != nil {
		return hooks.Errorf(http.StatusBadRequest, "%v", err)
	}
	if h := r.Header.Get("x-amz-sns-message-type"); h != "" && h != m.Type {
		return hooks.Errorf(http.StatusBadRequest, "x-amz-sns-message-type %q is not the message's Type %q", h, m.Type)
	}
	if h := r.Header.Get("x-amz-sns-topic-arn"); h != "" && h != m.TopicArn {
		return hooks.Errorf(http.StatusBadRequest, "x-amz-sns-topic-arn is not the message's TopicArn")
	}
	if !slices.Contains(s.topics, m.TopicArn) {
		return hooks.Errorf(http.StatusForbidden, "topic %s is not in sns.topic_arns", m.TopicArn)
	}
	if m.SignatureVersion != "1" && m.SignatureVersion != "2" {
		return hooks.Errorf(http.StatusUnauthorized, "unknown SignatureVersion %q (SNS uses 1 and 2)", m.SignatureVersion)
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Timestamp)
	if err != nil {
		return hooks.Errorf(http.StatusBadRequest, "Timestamp %q is not a time", m.Timestamp)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	cert, err := s.certs.get(ctx, m.SigningCertURL)
	if fe := (*fetchError)(nil); errors.As(err, &fe) {
		return hooks.Errorf(http.StatusServiceUnavailable, "%v", err)
	} else if err != nil {
		return hooks.Errorf(http.StatusUnauthorized, "%v", err)
	}
	if err := verifySignature(m, cert); err != nil {
		return hooks.Errorf(http.StatusUnauthorized, "%v", err)
	}
	// Checked after the signature, so that the age is of a time SNS set.
	if age := s.now().Sub(ts); age > s.maxAge || age < -5*time.Minute {
		return hooks.Errorf(http.StatusUnauthorized, "message of %s is %s old, over sns.max_age %s: a replay, or a clock far off", m.Timestamp, age.Round(time.Second), s.maxAge)
	}
	return nil
}

// The event types of SNS triggers.
const (
	EventAlarm    = hooks.EventTriggered
	EventOK       = hooks.EventResolved
	eventNoAlarm  = "sns.notification"
	eventNoData   = "alarm.insufficient_data"
	eventUnsubscr = "sns.unsubscribe"
)

// Action runs alarms that went to ALARM and resolves on OK; anything else
// (INSUFFICIENT_DATA, a notification that is not an alarm) is ignored.
func (s *Webhooks) Action(event string) hooks.Action {
	return hooks.TriggeredOrResolved(event)
}

// Parse reads a verified message: a subscription confirmation of an
// allowed topic is answered by confirming it, a notification carrying a
// CloudWatch alarm becomes a trigger.
func (s *Webhooks) Parse(r *http.Request, body []byte) ([]hooks.Trigger, error) {
	m, err := decode(body)
	if err != nil {
		return nil, err
	}
	switch m.Type {
	case "SubscriptionConfirmation":
		u, err := checkURL("SubscribeURL", m.SubscribeURL)
		if err != nil {
			return nil, err
		}
		if q := u.Query(); q.Get("Action") != "ConfirmSubscription" || q.Get("TopicArn") != m.TopicArn {
			return nil, errors.New("SubscribeURL does not confirm this message's topic")
		}
		return nil, &hooks.Answer{
			Code:  http.StatusOK,
			Reply: hooks.Reply{Status: "confirmed", Reason: "subscription to " + m.TopicArn + " confirmed"},
			Then:  func(ctx context.Context) error { return s.confirm(ctx, u, m.TopicArn) },
		}
	case "UnsubscribeConfirmation":
		return []hooks.Trigger{{Source: Name, Event: eventUnsubscr}}, nil
	case "Notification":
	default:
		return nil, fmt.Errorf("unknown message Type %q", m.Type)
	}
	if h := r.Header.Get("x-amz-sns-message-id"); h != "" && h != m.MessageID {
		return nil, errors.New("x-amz-sns-message-id is not the message's MessageId")
	}
	t, err := alarmTrigger(m)
	if err != nil {
		return nil, err
	}
	return []hooks.Trigger{t}, nil
}

// confirm GETs the verified SubscribeURL, as SNS asks.
func (s *Webhooks) confirm(ctx context.Context, u *url.URL, topic string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("confirm subscription to %s: %w", topic, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("confirm subscription to %s: %s", topic, resp.Status)
	}
	s.log.Info("sns subscription confirmed", "topic", topic)
	return nil
}

// alarm is the CloudWatch alarm in a notification's Message.
type alarm struct {
	AlarmName        string `json:"AlarmName"`
	AlarmDescription string `json:"AlarmDescription"`
	AWSAccountID     string `json:"AWSAccountId"`
	NewStateValue    string `json:"NewStateValue"`
	NewStateReason   string `json:"NewStateReason"`
	StateChangeTime  string `json:"StateChangeTime"`
	OldStateValue    string `json:"OldStateValue"`
	AlarmArn         string `json:"AlarmArn"`
	Trigger          *struct {
		MetricName string      `json:"MetricName"`
		Namespace  string      `json:"Namespace"`
		Dimensions []dimension `json:"Dimensions"`
		Metrics    []struct {
			MetricStat *struct {
				Metric *struct {
					MetricName string      `json:"MetricName"`
					Namespace  string      `json:"Namespace"`
					Dimensions []dimension `json:"Dimensions"`
				} `json:"Metric"`
			} `json:"MetricStat"`
		} `json:"Metrics"`
	} `json:"Trigger"`
}

// dimension is {name, value} in SNS notifications; the CloudWatch API
// spells it Name/Value, which encoding/json also matches.
type dimension struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

var instanceID = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)

// alarmTrigger reads the CloudWatch alarm of a notification. A
// notification that is not an alarm is answered and ignored.
func alarmTrigger(m *message) (hooks.Trigger, error) {
	t := hooks.Trigger{Source: Name, DeliveryID: m.MessageID, Event: eventNoAlarm}
	var a alarm
	if err := gojson.Unmarshal([]byte(m.Message), &a); err != nil || a.AlarmName == "" || a.NewStateValue == "" {
		return t, nil
	}
	switch a.NewStateValue {
	case "ALARM":
		t.Event = EventAlarm
	case "OK":
		t.Event = EventOK
	default:
		t.Event = eventNoData
		return t, nil
	}
	region, account, topic := arnParts(m.TopicArn)
	alarmARN := cmp.Or(a.AlarmArn, "arn:aws:cloudwatch:"+region+":"+cmp.Or(a.AWSAccountID, account)+":alarm:"+a.AlarmName)
	// Each time the alarm goes to ALARM is a new incident; its OK names
	// the alarm, which resolves every one not yet diagnosed.
	t.Alert = alarmARN
	t.Incident = hooks.Incident{
		ID:      alarmARN,
		Title:   a.AlarmName + ": " + a.NewStateReason,
		URL:     "https://console.aws.amazon.com/cloudwatch/home?region=" + url.QueryEscape(region) + "#alarmsV2:alarm/" + url.PathEscape(a.AlarmName),
		Service: hooks.Service{ID: m.TopicArn, Name: topic},
		Status:  a.NewStateValue,
	}
	if at, err := time.Parse("2006-01-02T15:04:05.000-0700", a.StateChangeTime); err == nil {
		t.Incident.CreatedAt = at.UTC()
	}
	if t.Event == EventAlarm {
		t.Incident.ID = alarmARN + "@" + a.StateChangeTime
	}
	t.Labels = map[string]string{"alarm_name": a.AlarmName, "region": region, "account_id": cmp.Or(a.AWSAccountID, account), "new_state": a.NewStateValue, "old_state": a.OldStateValue}
	var dims []dimension
	if tr := a.Trigger; tr != nil {
		t.Labels["namespace"], t.Labels["metric_name"] = tr.Namespace, tr.MetricName
		dims = append(dims, tr.Dimensions...)
		for _, mm := range tr.Metrics {
			if mm.MetricStat != nil && mm.MetricStat.Metric != nil {
				dims = append(dims, mm.MetricStat.Metric.Dimensions...)
			}
		}
	}
	for _, d := range dims {
		if d.Name == "InstanceId" && instanceID.MatchString(d.Value) && !slices.Contains(t.Hints.InstanceIDs, d.Value) {
			t.Hints.InstanceIDs = append(t.Hints.InstanceIDs, d.Value)
		}
		if d.Name != "" {
			t.Labels["dimension_"+d.Name] = d.Value
		}
	}
	return t, nil
}

// arnParts returns an SNS topic ARN's region, account and name.
func arnParts(arn string) (region, account, name string) {
	p := strings.Split(arn, ":")
	if len(p) != 6 {
		return "", "", arn
	}
	return p[3], p[4], p[5]
}
