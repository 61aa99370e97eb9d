package ec2test_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/firstlook/firstlook/runner/inventory/ec2/internal/ec2test"
)

// client is the real SDK client, pointed at the fake, without retries so
// every error shows as it was answered.
func client(srv *ec2test.Server, region, secret string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:           region,
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(ec2test.AccessKeyID, secret, ""),
		RetryMaxAttempts: 1,
	})
}

var fleet = []ec2test.Instance{
	{ID: "i-0aaaaaaaaaaaa0001", PrivateIP: "10.0.0.1", SubnetID: "subnet-0aaaaaaaaaaaaaaa1", VpcID: "vpc-0aaaaaaaaaaaaaaa1", Tags: map[string]string{"Name": "web-1", "env": "prod"}, Reservation: "r-0aaaaaaaaaaaa0001"},
	{ID: "i-0aaaaaaaaaaaa0002", PrivateIP: "10.0.0.2", Tags: map[string]string{"Name": "web-2", "env": "prod"}, Reservation: "r-0aaaaaaaaaaaa0001"},
	{ID: "i-0aaaaaaaaaaaa0003", PrivateIP: "10.0.0.3", State: "stopped", Tags: map[string]string{"Name": "db-1", "env": "prod"}},
	{ID: "i-0aaaaaaaaaaaa0004", PrivateIP: "10.0.0.4", PublicIP: "203.0.113.4", Tags: map[string]string{"Name": "web-3", "env": "dev"}},
}

func ids(out *ec2.DescribeInstancesOutput) []string {
	var got []string
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			got = append(got, aws.ToString(in.InstanceId))
		}
	}
	return got
}

func filter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

func TestDescribeInstancesFilters(t *testing.T) {
	srv := ec2test.New(t, fleet...)
	c := client(srv, ec2test.Region, ec2test.SecretAccessKey)
	tests := []struct {
		name    string
		filters []types.Filter
		want    []string
	}{
		{"no filter", nil, []string{"i-0aaaaaaaaaaaa0001", "i-0aaaaaaaaaaaa0002", "i-0aaaaaaaaaaaa0003", "i-0aaaaaaaaaaaa0004"}},
		{"running", []types.Filter{filter("instance-state-name", "running")}, []string{"i-0aaaaaaaaaaaa0001", "i-0aaaaaaaaaaaa0002", "i-0aaaaaaaaaaaa0004"}},
		{"tag and state", []types.Filter{filter("tag:env", "prod"), filter("instance-state-name", "running")}, []string{"i-0aaaaaaaaaaaa0001", "i-0aaaaaaaaaaaa0002"}},
		{"values are ORed", []types.Filter{filter("tag:Name", "web-1", "db-1")}, []string{"i-0aaaaaaaaaaaa0001", "i-0aaaaaaaaaaaa0003"}},
		{"wildcards", []types.Filter{filter("tag:Name", "web-?")}, []string{"i-0aaaaaaaaaaaa0001", "i-0aaaaaaaaaaaa0002", "i-0aaaaaaaaaaaa0004"}},
		{"star", []types.Filter{filter("tag:Name", "*-1")}, []string{"i-0aaaaaaaaaaaa0001", "i-0aaaaaaaaaaaa0003"}},
		{"private address", []types.Filter{filter("private-ip-address", "10.0.0.2")}, []string{"i-0aaaaaaaaaaaa0002"}},
		{"a public address is not a private one", []types.Filter{filter("private-ip-address", "203.0.113.4")}, nil},
		{"instance id", []types.Filter{filter("instance-id", "i-0aaaaaaaaaaaa0003")}, []string{"i-0aaaaaaaaaaaa0003"}},
		{"case-sensitive", []types.Filter{filter("tag:Name", "WEB-1")}, nil},
		{"missing tag", []types.Filter{filter("tag:team", "sre")}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{Filters: tc.filters})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(out); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	// Two instances of one reservation come back in one reservationSet item.
	out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0aaaaaaaaaaaa0001", "i-0aaaaaaaaaaaa0002"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 2 {
		t.Errorf("got %d reservations, want 1 holding both instances", len(out.Reservations))
	}
	in := out.Reservations[0].Instances[0]
	if aws.ToString(in.PrivateIpAddress) != "10.0.0.1" || aws.ToString(in.SubnetId) != "subnet-0aaaaaaaaaaaaaaa1" || aws.ToString(in.VpcId) != "vpc-0aaaaaaaaaaaaaaa1" ||
		in.State.Name != types.InstanceStateNameRunning || aws.ToInt32(in.State.Code) != 16 || len(in.Tags) != 2 {
		t.Errorf("got instance %+v: the SDK did not decode every field", in)
	}
}

func TestDescribeInstancesPages(t *testing.T) {
	var many []ec2test.Instance
	for i := range 12 {
		many = append(many, ec2test.Instance{ID: "i-0aaaaaaaaaaaa00" + string(rune('a'+i/10)) + string(rune('0'+i%10)), PrivateIP: "10.0.1.1"})
	}
	srv := ec2test.New(t, many...)
	srv.SetPageSize(5)
	c := client(srv, ec2test.Region, ec2test.SecretAccessKey)
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{}, func(o *ec2.DescribeInstancesPaginatorOptions) { o.Limit = 1000 })
	var got []string
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, ids(out)...)
	}
	if pages != 3 || len(got) != 12 || got[11] != many[11].ID {
		t.Errorf("got %d instances in %d pages, want 12 in 3", len(got), pages)
	}
	calls := srv.Calls()
	if calls[0].Form.Get("MaxResults") != "1000" || calls[1].Form.Get("NextToken") == "" || srv.Lists() != 1 {
		t.Errorf("got calls %v, want MaxResults then NextToken, one listing", calls)
	}

	// A token belongs to its request.
	_, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{NextToken: aws.String(calls[1].Form.Get("NextToken")), Filters: []types.Filter{filter("instance-id", "i-0aaaaaaaaaaaa00a1")}})
	if code := apiCode(err); code != "InvalidPaginationToken" {
		t.Errorf("got %v, want InvalidPaginationToken", err)
	}
}

func apiCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

func TestDescribeInstancesErrors(t *testing.T) {
	srv := ec2test.New(t, fleet...)
	ok := client(srv, ec2test.Region, ec2test.SecretAccessKey)
	tests := []struct {
		name string
		c    *ec2.Client
		in   *ec2.DescribeInstancesInput
		fail string // queued error
		want string
	}{
		{"malformed id", ok, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-nothex"}}, "", "InvalidInstanceID.Malformed"},
		{"unknown id", ok, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0bbbbbbbbbbbbbbbb"}}, "", "InvalidInstanceID.NotFound"},
		{"MaxResults with ids", ok, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0aaaaaaaaaaaa0001"}, MaxResults: aws.Int32(5)}, "", "InvalidParameterCombination"},
		{"MaxResults too small", ok, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(4)}, "", "InvalidParameterValue"},
		{"unknown filter", ok, &ec2.DescribeInstancesInput{Filters: []types.Filter{filter("colour", "red")}}, "", "InvalidParameterValue"},
		{"unauthorized", ok, &ec2.DescribeInstancesInput{}, "UnauthorizedOperation", "UnauthorizedOperation"},
		{"throttled", ok, &ec2.DescribeInstancesInput{}, "RequestLimitExceeded", "RequestLimitExceeded"},
		{"wrong region", client(srv, "us-east-1", ec2test.SecretAccessKey), &ec2.DescribeInstancesInput{}, "", "AuthFailure"},
		{"wrong secret", client(srv, ec2test.Region, "not-the-secret"), &ec2.DescribeInstancesInput{}, "", "SignatureDoesNotMatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fail != "" {
				srv.Fail(tc.fail)
			}
			_, err := tc.c.DescribeInstances(context.Background(), tc.in)
			if code := apiCode(err); code != tc.want {
				t.Errorf("got %v, want %s", err, tc.want)
			}
		})
	}
}

func TestUnsigned(t *testing.T) {
	srv := ec2test.New(t)
	resp, err := http.PostForm(srv.URL, url.Values{"Action": {"DescribeInstances"}, "Version": {ec2test.APIVersion}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := new(strings.Builder)
	_, _ = io.Copy(buf, resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(buf.String(), "<Code>MissingAuthenticationToken</Code>") || !strings.Contains(buf.String(), "<RequestID>") {
		t.Errorf("got %d %s, want 401 with the documented error body", resp.StatusCode, buf)
	}
}
