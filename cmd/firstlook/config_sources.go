package main

import (
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/alertmanager"
	"github.com/firstlook/firstlook/hooks/mackerel"
	"github.com/firstlook/firstlook/hooks/pagerduty"
)

// The sections of the alert sources that take credentials: each is the
// source's Config plus its secrets, which only this package reads.

// AlertmanagerConfig is the alertmanager section.
type AlertmanagerConfig struct {
	alertmanager.Config `yaml:",inline"`
	// BearerTokens are accepted as "Authorization: Bearer" (the
	// webhook_config's http_config.authorization.credentials); list two
	// while rotating.
	BearerTokens []Secret `yaml:"bearer_tokens"`
	// BasicAuth are accepted basic-auth credentials
	// (http_config.basic_auth).
	BasicAuth []BasicAuthConfig `yaml:"basic_auth"`
}

// MackerelConfig is the mackerel section.
type MackerelConfig struct {
	mackerel.Config `yaml:",inline"`
	// Tokens are accepted as the last segment of the channel's URL
	// (…/hooks/mackerel/<token>); list two while rotating.
	Tokens []Secret `yaml:"tokens"`
	// BasicAuth are accepted as credentials in the channel's URL
	// (https://user:password@…/hooks/mackerel).
	BasicAuth []BasicAuthConfig `yaml:"basic_auth"`
}

// RunAgainConfig is pagerduty.run_again, the "run diagnostics again"
// Custom Incident Action; it is on when a secret is set.
type RunAgainConfig struct {
	pagerduty.RunAgainConfig `yaml:",inline"`
	// Secrets are accepted as the value of the action's custom header;
	// list two while rotating.
	Secrets []Secret `yaml:"secrets"`
}

// BasicAuthConfig is one accepted username and password.
type BasicAuthConfig struct {
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
}

// values returns the secrets that are set.
func values(ss []Secret) []string {
	var out []string
	for _, s := range ss {
		if s.IsSet() {
			out = append(out, s.Value())
		}
	}
	return out
}

func basicAuth(list []BasicAuthConfig) []hooks.BasicAuth {
	out := make([]hooks.BasicAuth, len(list))
	for i, b := range list {
		out[i] = hooks.BasicAuth{Username: b.Username, Password: b.Password.Value()}
	}
	return out
}
