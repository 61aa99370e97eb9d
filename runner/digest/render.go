package digest

import (
	"fmt"
	"strings"
	"time"

	goslack "github.com/slack-go/slack"

	"github.com/firstlook/firstlook/evidence"
	slackpub "github.com/firstlook/firstlook/evidence/slack"
)

// Lines listed at most per section; the rest are counted.
const maxLines = 10

// Text is the digest's one-line fallback for notifications.
func Text(f Figures, loc *time.Location) string {
	return fmt.Sprintf("Handover digest %s: %d incidents opened, %d still open, %d firstlook runs (%d could not run)",
		window(f, loc), f.Opened, len(f.StillOpen), len(f.Runs), f.CouldNotRun)
}

func window(f Figures, loc *time.Location) string {
	return f.Since.In(loc).Format("Jan 2 15:04") + "–" + f.Until.In(loc).Format("Jan 2 15:04 MST")
}

// Blocks renders the digest as Block Kit, cut to Slack's limits by the
// same code as every run summary (evidence/slack.Fit).
func Blocks(f Figures, loc *time.Location) []goslack.Block {
	blocks := []goslack.Block{
		goslack.NewHeaderBlock(goslack.NewTextBlockObject(goslack.PlainTextType, "Handover digest", false, false)),
		goslack.NewContextBlock("", goslack.NewTextBlockObject(goslack.MarkdownType, window(f, loc), false, false)),
	}
	// Incidents opened, per service and urgency.
	var b strings.Builder
	fmt.Fprintf(&b, "*Incidents opened: %d*", f.Opened)
	for i, sc := range f.ByService {
		if i == maxLines {
			fmt.Fprintf(&b, "\n…and %d more services", len(f.ByService)-i)
			break
		}
		fmt.Fprintf(&b, "\n• %s: %d high, %d low", esc(sc.Service), sc.High, sc.Low)
	}
	blocks = append(blocks, section(b.String()))

	b.Reset()
	fmt.Fprintf(&b, "*Still open: %d*", len(f.StillOpen))
	for i, inc := range f.StillOpen {
		if i == maxLines {
			fmt.Fprintf(&b, "\n…and %d more", len(f.StillOpen)-i)
			break
		}
		fmt.Fprintf(&b, "\n• %s %s (%s, %s, open %s)", link(inc.URL, fmt.Sprintf("#%d", inc.Number)), esc(inc.Title), esc(inc.Service), inc.Status, f.Until.Sub(inc.CreatedAt).Round(time.Minute))
	}
	blocks = append(blocks, section(b.String()))

	blocks = append(blocks, section(fmt.Sprintf("*Time to acknowledge:* %s\n*Time to resolve:* %s", statText(f.TTA), statText(f.TTR))))

	b.Reset()
	b.WriteString("*Hosts with the most incidents*")
	if len(f.Hosts) == 0 {
		b.WriteString("\nnone")
	}
	for _, h := range f.Hosts {
		fmt.Fprintf(&b, "\n• `%s`: %d", esc(h.Host), h.Incidents)
	}
	blocks = append(blocks, section(b.String()))

	b.Reset()
	fmt.Fprintf(&b, "*firstlook runs: %d* (%d failed, %d could not run)", len(f.Runs), f.Failed, f.CouldNotRun)
	for i, r := range f.Runs {
		if i == maxLines {
			fmt.Fprintf(&b, "\n…and %d more", len(f.Runs)-i)
			break
		}
		fmt.Fprintf(&b, "\n%s %s on `%s` (%s %s)", mark(r.Outcome), link(r.Link, esc(r.Playbook)), esc(r.Host), esc(r.Incident), r.At.In(loc).Format("15:04"))
	}
	blocks = append(blocks, section(b.String()))
	return slackpub.Fit(blocks)
}

// FailureText is what the channel is told when a digest cannot be made.
func FailureText(since, until time.Time, loc *time.Location, err error) string {
	return fmt.Sprintf(":warning: The handover digest for %s could not be made: %v",
		window(Figures{Since: since, Until: until}, loc), err)
}

func statText(s Stat) string {
	if s.N == 0 {
		return "no incidents"
	}
	return fmt.Sprintf("median %s, worst %s (%d incidents)", s.Median.Round(time.Second), s.Worst.Round(time.Second), s.N)
}

func mark(outcome string) string {
	switch outcome {
	case string(evidence.StatusOK):
		return ":white_check_mark:"
	case string(evidence.StatusFailed):
		return ":x:"
	}
	return ":warning:"
}

func section(text string) goslack.Block {
	return goslack.NewSectionBlock(goslack.NewTextBlockObject(goslack.MarkdownType, text, false, false), nil, nil)
}

func link(u, text string) string {
	if u == "" || len(u) > 3000 {
		return text
	}
	return "<" + u + "|" + text + ">"
}

// esc escapes Slack's mrkdwn control characters.
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
