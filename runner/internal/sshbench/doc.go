// Package sshbench holds the SSH half of make bench: one five-step
// playbook run by firstlook's runner on one host and on twenty hosts
// behind one bastion, and the same five commands through OpenSSH's
// ssh -J, in the same run, over network namespaces whose links add 20 ms
// of round-trip time per hop (runner/ssh/sshtest with HopDelay). It has
// only the benchmark; see bench_test.go.
package sshbench
