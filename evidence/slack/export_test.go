package slack

// Slack's limits, for the black-box tests.
const (
	MaxBlocks     = maxBlocks
	MaxTextObject = maxTextObject
	MaxHeaderText = maxHeaderText
)
