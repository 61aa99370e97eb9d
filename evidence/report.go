package evidence

// Report is what publishers take to people: a run's redacted bundle and
// where its full evidence is.
type Report struct {
	// Bundle is the run's bundle, already redacted.
	Bundle *Bundle
	// Link opens the full evidence (the manifest): a presigned https URL
	// for S3, a file:// URL for a local directory.
	Link string
	// Marker identifies the run at every sink: publishers put it in what
	// they post (a note's last line, a Slack message's metadata) so that a
	// retry after a crash can find a post that already landed.
	Marker string
	// Fanout, when set, makes this the summary of one playbook across a
	// group of hosts; Bundle then holds only the summary's manifest
	// (FanoutManifest) and the renderers summarise the hosts' runs.
	Fanout *Fanout
}
