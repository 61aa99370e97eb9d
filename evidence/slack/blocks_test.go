package slack_test

import (
	"encoding/json"
	"flag"
	"strings"
	"testing"
	"unicode/utf8"

	goslack "github.com/slack-go/slack"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/evidencetest"
	"github.com/firstlook/firstlook/evidence/slack"
)

// The Block Kit goldens, moved here from evidence with the renderer; the
// runs are evidencetest's, the same cases evidence's render tests use.

var update = flag.Bool("update", false, "rewrite the golden files in testdata/render")

var cases = evidencetest.Cases()

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	evidencetest.Golden(t, *update, name, got)
}

func TestBlocks(t *testing.T) {
	for name, rep := range cases {
		t.Run(name, func(t *testing.T) {
			blocks, err := json.MarshalIndent(goslack.Blocks{BlockSet: slack.Blocks(rep)}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".blocks.json", append(blocks, '\n'))
		})
	}
}

// TestBlocksLimits (evidence's TestSlackLimits, moved with the renderer): whatever the run, the blocks stay within Slack's limits.
func TestBlocksLimits(t *testing.T) {
	var steps []evidencetest.Step
	for range 80 {
		steps = append(steps, evidencetest.Step{Name: strings.Repeat("n", 300), Cmd: "x", Out: strings.Repeat("é", 10000) + "\n" + strings.Repeat("```", 500), MS: 1})
	}
	rep := evidencetest.Run(evidence.StatusOK, "", steps...)
	rep.Bundle.Manifest.Host.Name = strings.Repeat("h", 400)
	blocks := slack.Blocks(rep)
	if len(blocks) > slack.MaxBlocks {
		t.Fatalf("got %d blocks, want at most %d", len(blocks), slack.MaxBlocks)
	}
	raw, _ := json.Marshal(goslack.Blocks{BlockSet: blocks})
	var decoded []map[string]any
	_ = json.Unmarshal(raw, &decoded)
	for i, bl := range decoded {
		if txt, ok := bl["text"].(map[string]any); ok {
			s := txt["text"].(string)
			limit := slack.MaxTextObject
			if bl["type"] == "header" {
				limit = slack.MaxHeaderText
			}
			if n := utf8.RuneCountInString(s); n > limit || !utf8.ValidString(s) {
				t.Errorf("block %d (%s): %d characters, limit %d", i, bl["type"], n, limit)
			}
		}
	}
	if last := decoded[len(decoded)-1]; !strings.Contains(string(raw), "more steps") {
		t.Errorf("steps beyond the budget were not folded; last block %v", last)
	}
}

// TestBlocksFanout is the Block Kit half of evidence's TestRenderFanout,
// moved here with the renderer.
func TestBlocksFanout(t *testing.T) {
	rep := evidencetest.Fanout()
	blocks, _ := json.MarshalIndent(goslack.Blocks{BlockSet: slack.Blocks(rep)}, "", "  ")
	golden(t, "fanout.blocks.json", append(blocks, '\n'))
}
