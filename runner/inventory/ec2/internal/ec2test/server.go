// Package ec2test is a fake Amazon EC2 endpoint for the one call the EC2
// inventory makes: DescribeInstances over the EC2 Query API, signed with
// Signature Version 4. It answers the documented request and response
// shapes, applies the filters, paginates, and returns the documented error
// responses, so the real aws-sdk-go-v2 client can be tested end to end.
//
// The shapes it follows:
//   - Query requests (POST form, Action, Version 2016-11-15, SigV4):
//     https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Query-Requests.html
//   - DescribeInstances (Filter.N.Name / Filter.N.Value.M, InstanceId.N,
//     MaxResults 5–1000 and not with InstanceId, NextToken; the response's
//     reservationSet / instancesSet / item, nextToken):
//     https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html
//   - XML responses, every one with a requestId, lists as <item> children
//     of a *Set element:
//     https://docs.aws.amazon.com/AWSEC2/latest/APIReference/api-responses.html
//   - Error responses (<Response><Errors><Error><Code>, <Message>,
//     <RequestID>) and the error codes:
//     https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
//     and, for RequestLimitExceeded, the throttling page:
//     https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html
package ec2test

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Credentials the fake accepts; Setenv puts them where the SDK's default
// credential chain finds them.
const (
	AccessKeyID     = "AKIAFIRSTLOOKTEST01"
	SecretAccessKey = "firstlook-test-secret-key-not-a-real-one"
	// Region is the region requests must be signed for.
	Region = "eu-west-1"
)

// APIVersion is the only EC2 API version the Query API accepts today.
const APIVersion = "2016-11-15"

// Instance is an instance the fake reports.
type Instance struct {
	ID string
	// State is pending, running, shutting-down, terminated, stopping or
	// stopped; empty means running.
	State     string
	PrivateIP string
	PublicIP  string
	SubnetID  string
	VpcID     string
	Tags      map[string]string
	// Reservation groups instances in one reservationSet item; empty puts
	// the instance in a reservation of its own.
	Reservation string
}

// Call is one request the fake answered.
type Call struct {
	Form url.Values
	// Error is the error code answered, empty for a success.
	Error string
	// Invocation is the SDK's amz-sdk-invocation-id: the same for every
	// attempt of one operation, so retries can be told from new calls.
	Invocation string
}

// Server is a running fake.
type Server struct {
	// URL is the endpoint to configure the client with.
	URL string

	srv *httptest.Server
	now func() time.Time

	mu        sync.Mutex
	instances []Instance
	pageSize  int
	failures  []string
	calls     []Call
	hold      chan struct{}
	arrived   chan struct{}
}

// New starts a fake serving instances; it stops when the test ends.
func New(t testing.TB, instances ...Instance) *Server {
	s := &Server{instances: instances, pageSize: 1000, now: time.Now}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Setenv points the SDK's default configuration at the fake's
// credentials, and away from anything on the machine running the test
// (shared config files, a profile, the instance metadata service).
func Setenv(t testing.TB) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       SecretAccessKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             dir + "/config",
		"AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials",
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_EC2":        "",
	} {
		t.Setenv(k, v)
	}
}

// SetInstances replaces the instances.
func (s *Server) SetInstances(instances ...Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances = instances
}

// SetPageSize caps how many instances one response holds, whatever
// MaxResults asks: EC2 may return fewer, and clients must follow
// nextToken.
func (s *Server) SetPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = n
}

// Fail makes the next requests answer with these error codes, one each,
// in order: UnauthorizedOperation, RequestLimitExceeded, InternalError …
func (s *Server) Fail(codes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, codes...)
}

// Calls returns the DescribeInstances requests answered so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Lists counts the calls that started a listing (no NextToken), answered
// or failed: the number of refreshes a client made.
func (s *Server) Lists() int {
	n := 0
	for _, c := range s.Calls() {
		if c.Form.Get("NextToken") == "" {
			n++
		}
	}
	return n
}

// Hold makes requests wait until release is called; arrived receives once
// for each request that starts waiting.
func (s *Server) Hold() (arrived <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = make(chan struct{})
	s.arrived = make(chan struct{}, 100)
	hold := s.hold
	var once sync.Once
	return s.arrived, func() {
		once.Do(func() {
			s.mu.Lock()
			s.hold = nil
			s.mu.Unlock()
			close(hold)
		})
	}
}

// apiError is one documented EC2 error: code, HTTP status, message.
type apiError struct {
	Code, Message string
	Status        int
}

func errorFor(code string) apiError {
	switch code {
	case "UnauthorizedOperation":
		return apiError{code, "You are not authorized to perform this operation.", http.StatusForbidden}
	case "RequestLimitExceeded":
		return apiError{code, "Request limit exceeded.", http.StatusServiceUnavailable}
	case "InternalError":
		return apiError{code, "An internal error has occurred.", http.StatusInternalServerError}
	case "Unavailable":
		return apiError{code, "The server is overloaded and can't handle the request.", http.StatusServiceUnavailable}
	}
	return apiError{code, code, http.StatusBadRequest}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, apiError{"InvalidParameterValue", err.Error(), http.StatusBadRequest})
		return
	}
	// EC2 takes GET or POST; the SDK posts the form.
	form, err := url.ParseQuery(string(body))
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") || err != nil {
		writeError(w, apiError{"MalformedQueryString", "expected a POSTed form", http.StatusBadRequest})
		return
	}
	inv := r.Header.Get("Amz-Sdk-Invocation-Id")
	if e, ok := s.verify(r, body); !ok {
		s.record(form, e.Code, inv)
		writeError(w, e)
		return
	}
	switch {
	case form.Get("Action") == "":
		writeError(w, apiError{"MissingAction", "The request must contain the parameter Action.", http.StatusBadRequest})
		return
	case form.Get("Action") != "DescribeInstances":
		writeError(w, apiError{"InvalidAction", "The action " + form.Get("Action") + " is not valid for this web service.", http.StatusBadRequest})
		return
	case form.Get("Version") != APIVersion:
		writeError(w, apiError{"InvalidParameterValue", "Version " + form.Get("Version") + " is not supported.", http.StatusBadRequest})
		return
	}

	s.mu.Lock()
	hold, arrived := s.hold, s.arrived
	s.mu.Unlock()
	if hold != nil {
		arrived <- struct{}{}
		<-hold
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) > 0 {
		code := s.failures[0]
		s.failures = s.failures[1:]
		s.calls = append(s.calls, Call{Form: form, Error: code, Invocation: inv})
		writeError(w, errorFor(code))
		return
	}
	resp, e := s.describe(form)
	if e.Code != "" {
		s.calls = append(s.calls, Call{Form: form, Error: e.Code, Invocation: inv})
		writeError(w, e)
		return
	}
	s.calls = append(s.calls, Call{Form: form, Invocation: inv})
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(resp)
}

func (s *Server) record(form url.Values, code, inv string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, Call{Form: form, Error: code, Invocation: inv})
}

var (
	filterName  = regexp.MustCompile(`^Filter\.(\d+)\.Name$`)
	instanceIDs = regexp.MustCompile(`^InstanceId\.(\d+)$`)
	wellFormed  = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
)

type filter struct {
	name   string
	values []string
}

// listed returns the values of a flattened list parameter (InstanceId.N,
// Filter.N.Value.M) in index order.
func listed(form url.Values, re *regexp.Regexp) []string {
	type kv struct {
		i int
		v string
	}
	var out []kv
	for k, vs := range form {
		if m := re.FindStringSubmatch(k); m != nil {
			i, _ := strconv.Atoi(m[1])
			out = append(out, kv{i, vs[0]})
		}
	}
	slices.SortFunc(out, func(a, b kv) int { return a.i - b.i })
	vals := make([]string, len(out))
	for i, p := range out {
		vals[i] = p.v
	}
	return vals
}

func (s *Server) describe(form url.Values) (*describeResponse, apiError) {
	ids := listed(form, instanceIDs)
	var filters []filter
	for k := range form {
		m := filterName.FindStringSubmatch(k)
		if m == nil {
			continue
		}
		f := filter{name: form.Get(k), values: listed(form, regexp.MustCompile(`^Filter\.`+m[1]+`\.Value\.(\d+)$`))}
		if len(f.values) == 0 {
			return nil, apiError{"InvalidParameterValue", "The filter '" + f.name + "' has no values.", http.StatusBadRequest}
		}
		if !knownFilter(f.name) {
			return nil, apiError{"InvalidParameterValue", "The filter '" + f.name + "' is invalid", http.StatusBadRequest}
		}
		filters = append(filters, f)
	}
	limit := s.pageSize
	if mr := form.Get("MaxResults"); mr != "" {
		n, err := strconv.Atoi(mr)
		switch {
		case len(ids) > 0:
			return nil, apiError{"InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults", http.StatusBadRequest}
		case err != nil || n < 5 || n > 1000:
			return nil, apiError{"InvalidParameterValue", "Value (" + mr + ") for parameter maxResults is invalid. Expecting a value between 5 and 1000.", http.StatusBadRequest}
		}
		limit = min(limit, n)
	}
	for _, id := range ids {
		if !wellFormed.MatchString(id) {
			return nil, apiError{"InvalidInstanceID.Malformed", "Invalid id: \"" + id + "\"", http.StatusBadRequest}
		}
		if !slices.ContainsFunc(s.instances, func(in Instance) bool { return in.ID == id }) {
			return nil, apiError{"InvalidInstanceID.NotFound", "The instance ID '" + id + "' does not exist", http.StatusBadRequest}
		}
	}
	var match []Instance
	for _, in := range s.instances {
		if (len(ids) == 0 || slices.Contains(ids, in.ID)) && matches(in, filters) {
			match = append(match, in)
		}
	}
	// The token names the position and the request it belongs to, so a
	// token replayed with other filters is refused as EC2 refuses it.
	start := 0
	query := queryKey(form)
	if tok := form.Get("NextToken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		at, key, ok := strings.Cut(string(b), ":")
		n, aerr := strconv.Atoi(at)
		if err != nil || !ok || aerr != nil || key != query || n < 0 || n > len(match) {
			return nil, apiError{"InvalidPaginationToken", "The pagination token is invalid.", http.StatusBadRequest}
		}
		start = n
	}
	end := len(match)
	if len(ids) == 0 {
		end = min(len(match), start+limit)
	}
	resp := &describeResponse{Xmlns: "http://ec2.amazonaws.com/doc/" + APIVersion + "/", RequestID: requestID()}
	at := map[string]int{} // reservation id → index in resp.Reservations
	for i, in := range match[start:end] {
		rid := in.Reservation
		if rid == "" {
			rid = fmt.Sprintf("r-%017x", start+i)
		}
		j, ok := at[rid]
		if !ok {
			resp.Reservations = append(resp.Reservations, reservation{ID: rid, OwnerID: "123456789012"})
			j = len(resp.Reservations) - 1
			at[rid] = j
		}
		resp.Reservations[j].Instances = append(resp.Reservations[j].Instances, toXML(in))
	}
	if end < len(match) {
		resp.NextToken = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end) + ":" + query))
	}
	return resp, apiError{}
}

// queryKey identifies a request apart from its page.
func queryKey(form url.Values) string {
	f := url.Values{}
	for k, v := range form {
		if k != "NextToken" {
			f[k] = v
		}
	}
	return fmt.Sprintf("%x", f.Encode())
}

func knownFilter(name string) bool {
	switch name {
	case "instance-id", "instance-state-name", "private-ip-address", "ip-address", "subnet-id", "vpc-id", "tag-key":
		return true
	}
	return strings.HasPrefix(name, "tag:") && len(name) > len("tag:")
}

// matches applies the filters the way EC2 documents them: every filter
// must hold, any of a filter's values may match, values take the * and ?
// wildcards and are case-sensitive.
func matches(in Instance, filters []filter) bool {
	for _, f := range filters {
		var got []string
		switch f.name {
		case "instance-id":
			got = []string{in.ID}
		case "instance-state-name":
			got = []string{state(in)}
		case "private-ip-address":
			got = []string{in.PrivateIP}
		case "ip-address":
			got = []string{in.PublicIP}
		case "subnet-id":
			got = []string{in.SubnetID}
		case "vpc-id":
			got = []string{in.VpcID}
		case "tag-key":
			for k := range in.Tags {
				got = append(got, k)
			}
		default:
			if v, ok := in.Tags[strings.TrimPrefix(f.name, "tag:")]; ok {
				got = []string{v}
			}
		}
		if !slices.ContainsFunc(f.values, func(pattern string) bool {
			return slices.ContainsFunc(got, func(v string) bool { return v != "" && glob(pattern, v) })
		}) {
			return false
		}
	}
	return true
}

// glob matches * (any run) and ? (one character).
func glob(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if glob(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && glob(pattern[1:], s[1:])
	}
	return s != "" && s[0] == pattern[0] && glob(pattern[1:], s[1:])
}

func state(in Instance) string {
	if in.State == "" {
		return "running"
	}
	return in.State
}

// stateCodes are the documented InstanceState codes.
var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

type describeResponse struct {
	XMLName      xml.Name      `xml:"DescribeInstancesResponse"`
	Xmlns        string        `xml:"xmlns,attr"`
	RequestID    string        `xml:"requestId"`
	Reservations []reservation `xml:"reservationSet>item"`
	NextToken    string        `xml:"nextToken,omitempty"`
}

type reservation struct {
	ID        string        `xml:"reservationId"`
	OwnerID   string        `xml:"ownerId"`
	Instances []xmlInstance `xml:"instancesSet>item"`
}

type xmlInstance struct {
	ID    string `xml:"instanceId"`
	State struct {
		Code int    `xml:"code"`
		Name string `xml:"name"`
	} `xml:"instanceState"`
	PrivateIP string   `xml:"privateIpAddress,omitempty"`
	PublicIP  string   `xml:"ipAddress,omitempty"`
	SubnetID  string   `xml:"subnetId,omitempty"`
	VpcID     string   `xml:"vpcId,omitempty"`
	Tags      []xmlTag `xml:"tagSet>item"`
}

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func toXML(in Instance) xmlInstance {
	x := xmlInstance{ID: in.ID, PrivateIP: in.PrivateIP, PublicIP: in.PublicIP, SubnetID: in.SubnetID, VpcID: in.VpcID}
	x.State.Name = state(in)
	x.State.Code = stateCodes[x.State.Name]
	keys := make([]string, 0, len(in.Tags))
	for k := range in.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		x.Tags = append(x.Tags, xmlTag{k, in.Tags[k]})
	}
	return x
}

type errorResponse struct {
	XMLName   xml.Name `xml:"Response"`
	Errors    []xmlErr `xml:"Errors>Error"`
	RequestID string   `xml:"RequestID"`
}

type xmlErr struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func writeError(w http.ResponseWriter, e apiError) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.Status)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(errorResponse{Errors: []xmlErr{{e.Code, e.Message}}, RequestID: requestID()})
}

var (
	ridMu sync.Mutex
	ridN  int
)

func requestID() string {
	ridMu.Lock()
	defer ridMu.Unlock()
	ridN++
	return fmt.Sprintf("7a62c49f-347e-4fc4-9331-%012d", ridN)
}
