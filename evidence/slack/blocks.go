package slack

import (
	"fmt"
	"strings"

	goslack "github.com/slack-go/slack"

	"github.com/firstlook/firstlook/evidence"
)

// Blocks is the default renderer of a run's message (see WithRenderer):
// Block Kit built from the sink-neutral pieces of evidence's summary.

func fanoutBlocks(rep evidence.Report) []goslack.Block {
	f := rep.Fanout
	blocks := []goslack.Block{
		goslack.NewHeaderBlock(goslack.NewTextBlockObject(goslack.PlainTextType, evidence.Clip(evidence.FanoutHeadline(rep), maxHeaderText), true, false)),
	}
	if len(f.Differences) > 0 {
		var ls []string
		for _, d := range f.Differences {
			ls = append(ls, "• "+slackEscape(d.String()))
		}
		blocks = append(blocks, section("*Differs from the rest:*\n"+strings.Join(ls, "\n")))
	} else if len(f.Runs) >= 3 {
		blocks = append(blocks, section("No host stands out from the rest."))
	}
	// Hosts, several per section, within the block budget.
	var chunk []string
	flush := func() {
		if len(chunk) > 0 {
			blocks = append(blocks, section(strings.Join(chunk, "\n")))
			chunk = nil
		}
	}
	size := 0
	for _, r := range f.Runs {
		m := r.Bundle.Manifest
		line := fmt.Sprintf("%s %s — %s", slackRunMark(m), slackEscape(m.Host.Name), evidence.Outcome(m))
		if r.Link != "" && len(r.Link) < 1000 {
			line = fmt.Sprintf("%s <%s|%s> — %s", slackRunMark(m), r.Link, slackEscape(m.Host.Name), evidence.Outcome(m))
		}
		if size+len(line)+1 > maxTextObject-100 && len(blocks) < maxBlocks-1 {
			flush()
			size = 0
		}
		chunk = append(chunk, line)
		size += len(line) + 1
	}
	flush()
	return blocks
}

// slackFindings is the run's findings as one section, worst first, with
// the steps' outcome (the header shows the worst finding), or nil.
func slackFindings(m evidence.Manifest) goslack.Block {
	fs := evidence.Findings(m)
	if len(fs) == 0 {
		return nil
	}
	icon := map[evidence.Severity]string{evidence.SeverityCrit: ":red_circle:", evidence.SeverityWarn: ":large_orange_circle:", evidence.SeverityInfo: ":large_blue_circle:"}
	ls := []string{"*Findings* (" + slackEscape(evidence.StepsHeadline(m)) + ")"}
	for _, f := range fs {
		ls = append(ls, fmt.Sprintf("%s *%s* %s _(%s)_", icon[f.Severity], strings.ToUpper(string(f.Severity)), slackEscape(f.Message), slackEscape(f.Step)))
	}
	return section(strings.Join(ls, "\n"))
}

func slackRunMark(m evidence.Manifest) string {
	switch m.Status {
	case evidence.StatusOK:
		return ":white_check_mark:"
	case evidence.StatusNotStarted:
		return ":warning:"
	}
	return ":x:"
}

// Blocks renders a run as Block Kit blocks within Slack's limits: a
// header, the incident and links, then one section per step. Steps beyond
// the block budget are folded into a last section.
func Blocks(rep evidence.Report) []goslack.Block {
	if rep.Fanout != nil {
		return fanoutBlocks(rep)
	}
	m := rep.Bundle.Manifest
	blocks := []goslack.Block{
		goslack.NewHeaderBlock(goslack.NewTextBlockObject(goslack.PlainTextType, evidence.Clip(evidence.Headline(m), maxHeaderText), true, false)),
	}
	ctx := []string{}
	if m.Incident.ID != "" {
		inc := "incident " + m.Incident.ID
		if m.Incident.Number > 0 {
			inc = fmt.Sprintf("incident #%d", m.Incident.Number)
		}
		if m.Incident.URL != "" {
			inc = fmt.Sprintf("<%s|%s>", m.Incident.URL, slackEscape(inc))
		}
		ctx = append(ctx, inc)
	}
	if m.Host.Address != "" {
		h := "`" + slackEscape(m.Host.Address) + "`"
		if m.Host.Bastion != "" {
			h += " via " + slackEscape(m.Host.Bastion)
		}
		ctx = append(ctx, h)
	}
	if d := evidence.RunDuration(m); d > 0 {
		ctx = append(ctx, d.String())
	}
	if m.Incident.Note != "" {
		ctx = append(ctx, slackEscape(m.Incident.Note))
	}
	if len(ctx) > 0 {
		blocks = append(blocks, goslack.NewContextBlock("", goslack.NewTextBlockObject(goslack.MarkdownType, evidence.Clip(strings.Join(ctx, " · "), maxTextObject), false, false)))
	}
	if m.Status == evidence.StatusNotStarted {
		blocks = append(blocks, section(":warning: *Diagnostics could not run.* "+slackEscape(m.Error)))
	}
	if b := slackFindings(m); b != nil {
		blocks = append(blocks, b)
	}
	if rep.Link != "" && len(rep.Link) <= maxButtonURL {
		btn := goslack.NewButtonBlockElement("firstlook_evidence", "evidence", goslack.NewTextBlockObject(goslack.PlainTextType, "Full evidence", false, false)).WithURL(rep.Link)
		blocks = append(blocks, goslack.NewActionBlock("", btn))
	}
	// Keep room for the footnote and a fold section.
	budget := maxBlocks - len(blocks) - 2
	for i, st := range m.Steps {
		if i == budget && len(m.Steps) > budget {
			var rest []string
			for _, s := range m.Steps[i:] {
				rest = append(rest, fmt.Sprintf("%s %s — %s", slackMark(s), slackEscape(s.Name), evidence.StepResult(s)))
			}
			blocks = append(blocks, section(fmt.Sprintf("…and %d more steps:\n%s", len(rest), strings.Join(rest, "\n"))))
			break
		}
		text := fmt.Sprintf("%s *%d. %s* — %s", slackMark(st), i+1, slackEscape(st.Name), evidence.StepResult(st))
		if lines := evidence.StepLines(rep.Bundle, st); len(lines) > 0 {
			// Inside ``` only backticks need care.
			text += "\n```" + strings.ReplaceAll(strings.Join(lines, "\n"), "```", "'''") + "```"
		}
		blocks = append(blocks, section(text))
	}
	if foot := evidence.Footnote(m); foot != "" {
		blocks = append(blocks, goslack.NewContextBlock("", goslack.NewTextBlockObject(goslack.MarkdownType, evidence.Clip(foot, maxTextObject), false, false)))
	}
	return blocks
}

func section(text string) *goslack.SectionBlock {
	return goslack.NewSectionBlock(goslack.NewTextBlockObject(goslack.MarkdownType, evidence.Clip(text, maxTextObject), false, false), nil, nil)
}

func slackMark(st evidence.Step) string {
	switch {
	case st.Skipped:
		return ":black_right_pointing_double_triangle_with_vertical_bar:"
	case st.OK():
		return ":white_check_mark:"
	}
	return ":x:"
}

// slackEscape escapes the three characters Slack's mrkdwn treats as
// control sequences (https://api.slack.com/reference/surfaces/formatting#escaping).
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
