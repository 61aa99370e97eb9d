// Package redacttest plants fake secrets of many kinds in command output
// and finds what of them survives redaction. The secrets are built at run
// time from a seed, in the exact shapes of the real ones (prefixes,
// alphabets, lengths, checksums where a detector would look), so that no
// real-looking secret is kept in the repository and secret scanners stay
// quiet about it.
package redacttest

import (
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Secret is one planted secret.
type Secret struct {
	// Kind names the format, for messages.
	Kind string
	// Text is how it appears in output: a line or a few.
	Text string
	// Values are the secret parts of Text. None of their 8-byte pieces
	// may survive redaction (a partly redacted secret is a leak).
	Values []string
}

const (
	upper  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	lower  = "abcdefghijklmnopqrstuvwxyz"
	digits = "0123456789"
	alnum  = upper + lower + digits
	hexs   = "0123456789abcdef"
	b64    = alnum + "+/"
	b64url = alnum + "-_"
)

// gen draws from a seeded source, so a failing seed can be replayed.
type gen struct{ r *rand.Rand }

func (g gen) s(set string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = set[g.r.IntN(len(set))]
	}
	return string(b)
}

func (g gen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.UintN(256))
	}
	return b
}

// password is a human-made-looking password: letters, digits, symbols.
func (g gen) password() string {
	return g.s(upper, 1) + g.s(lower, 5) + g.s(digits, 2) + g.s("!#%&*+-.?@^_~", 1) + g.s(alnum, 5)
}

// pemBlock is a PEM block of random DER-sized bytes, with headers.
func (g gen) pemBlock(typ string, n int, headers map[string]string) (string, []string) {
	text := string(pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: g.bytes(n)}))
	return strings.TrimSuffix(text, "\n"), bodyLines(text)
}

// bodyLines are the base64 lines of an armoured block, its secret.
func bodyLines(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if len(l) >= 8 && !strings.HasPrefix(l, "-----") && !strings.Contains(l, ": ") {
			out = append(out, l)
		}
	}
	return out
}

func (g gen) jwt() string {
	enc := base64.RawURLEncoding.EncodeToString
	head := enc([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body := enc([]byte(fmt.Sprintf(`{"sub":"%d","name":"svc-%s","iat":%d,"exp":%d}`, g.r.IntN(1e6), g.s(lower, 6), 1764800000+g.r.IntN(1e6), 1764900000+g.r.IntN(1e6))))
	return head + "." + body + "." + enc(g.bytes(32))
}

// Plant returns at least 50 secrets of more than 30 kinds: cloud keys,
// service tokens, JWTs, private keys of every PEM type, credentials in
// URLs, config files and environment dumps.
func Plant(seed uint64) []Secret {
	g := gen{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	var out []Secret
	add := func(kind, text string, values ...string) {
		out = append(out, Secret{Kind: kind, Text: text, Values: values})
	}
	one := func(kind, format, value string) { add(kind, fmt.Sprintf(format, value), value) }

	// Cloud providers.
	one("aws access key id", "AWS_ACCESS_KEY_ID=%s", "AKIA"+g.s("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))
	one("aws sts access key id", "  \"AccessKeyId\": \"%s\",", "ASIA"+g.s("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))
	one("aws secret access key", "aws_secret_access_key = %s", g.s(b64, 40))
	one("aws session token", "aws_session_token = %s", "IQoJb3JpZ2luX2Vj"+g.s(b64, 300))
	one("gcp api key", "maps.apiKey=%s", "AIza"+g.s(b64url, 35))
	{
		key, lines := g.pemBlock("PRIVATE KEY", 1190, nil)
		id := g.s(hexs, 40)
		add("gcp service account json", fmt.Sprintf(`{"type": "service_account", "project_id": "shop-prod", "private_key_id": "%s", "private_key": "%s\n", "client_email": "orders@shop-prod.iam.gserviceaccount.com"}`,
			id, strings.ReplaceAll(key, "\n", `\n`)), lines...) // the key id names the key, it is no secret
	}
	one("azure ad client secret", "AZURE_CLIENT_SECRET=%s", g.s(alnum, 3)+g.s(digits, 1)+"Q~"+g.s(alnum+"_~.-", 34))
	one("azure storage connection string", "DefaultEndpointsProtocol=https;AccountName=shopprod;AccountKey=%s;EndpointSuffix=core.windows.net", base64.StdEncoding.EncodeToString(g.bytes(64)))
	one("azure sas token", "https://shopprod.blob.core.windows.net/backups?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2026-12-31T00:00:00Z&sig=%s", strings.ReplaceAll(base64.StdEncoding.EncodeToString(g.bytes(32)), "/", "%2F"))

	// Code hosts and package registries.
	one("github personal access token", "remote: https://x-access-token:%s@github.com/shop/orders.git", "ghp_"+g.s(alnum, 36))
	one("github fine-grained token", "GITHUB_TOKEN=%s", "github_pat_"+g.s(alnum, 22)+"_"+g.s(alnum, 59))
	one("github oauth token", "oauth_token: %s", "gho_"+g.s(alnum, 36))
	one("github app token", "token %s", "ghs_"+g.s(alnum, 36))
	one("gitlab personal access token", "PRIVATE-TOKEN: %s", "glpat-"+g.s(b64url, 20))
	one("gitlab runner token", "  token = \"%s\"", "glrt-"+g.s(b64url, 20))
	one("npm token", "//registry.npmjs.org/:_authToken=%s", "npm_"+g.s(alnum, 36))
	one("pypi token", "password = %s", "pypi-AgEIcHlwaS5vcmc"+g.s(b64url, 70))

	// Chat, paging, payments and other services.
	one("slack bot token", "SLACK_BOT_TOKEN=%s", "xoxb-"+g.s(digits, 12)+"-"+g.s(digits, 13)+"-"+g.s(alnum, 24))
	one("slack user token", "token: %s", "xoxp-"+g.s(digits, 12)+"-"+g.s(digits, 12)+"-"+g.s(digits, 13)+"-"+g.s(hexs, 32))
	one("slack app token", "SLACK_APP_TOKEN=%s", "xapp-1-A"+g.s(upper+digits, 10)+"-"+g.s(digits, 13)+"-"+g.s(hexs, 64))
	{
		path := "T" + g.s(upper+digits, 8) + "/B" + g.s(upper+digits, 10) + "/" + g.s(alnum, 24)
		add("slack webhook url", "curl -X POST https://hooks.slack.com/services/"+path+" -d @payload.json", path)
	}
	one("stripe secret key", "STRIPE_SECRET_KEY=%s", "sk_live_"+g.s(alnum, 99))
	one("stripe restricted key", "stripe.api_key = '%s'", "rk_live_"+g.s(alnum, 24))
	one("pagerduty rest api key", "Authorization: Token token=%s", g.s(alnum+"_+-", 20))
	one("pagerduty routing key", "routing_key: %s", "R"+g.s(upper+digits, 31))
	one("pagerduty integration key", "\"integration_key\": \"%s\"", g.s(hexs, 32))
	one("twilio api key", "TWILIO_API_KEY=%s", "SK"+g.s(hexs, 32))
	one("sendgrid api key", "SENDGRID_API_KEY=%s", "SG."+g.s(b64url, 22)+"."+g.s(b64url, 43))
	one("openai api key", "OPENAI_API_KEY=%s", "sk-proj-"+g.s(b64url, 74)+"T3BlbkFJ"+g.s(b64url, 74))
	one("anthropic api key", "ANTHROPIC_API_KEY=%s", "sk-ant-api03-"+g.s(b64url, 93)+"AA")
	one("vault token", "VAULT_TOKEN=%s", "hvs."+g.s(b64url, 94))
	one("hugging face token", "HF_TOKEN=%s", "hf_"+g.s(upper+lower, 34))
	one("digitalocean token", "DIGITALOCEAN_ACCESS_TOKEN=%s", "dop_v1_"+g.s(hexs, 64))
	one("shopify token", "X-Shopify-Access-Token: %s", "shpat_"+g.s(hexs, 32))
	one("grafana service account token", "GF_TOKEN=%s", "glsa_"+g.s(alnum, 32)+"_"+g.s(hexs, 8))
	one("datadog api key", "DD_API_KEY=%s", g.s(hexs, 32))
	one("telegram bot token", "TELEGRAM_BOT_TOKEN=%s", g.s(digits, 10)+":AA"+g.s(b64url, 33))
	one("sentry user token", "SENTRY_AUTH_TOKEN=%s", "sntryu_"+g.s(hexs, 64))
	one("age secret key", "# secret key: %s", "AGE-SECRET-KEY-1"+g.s("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58))

	// JWTs.
	one("jwt in a bearer header", "Authorization: Bearer %s", g.jwt())
	one("jwt in a log line", "level=info msg=\"session refreshed\" id_token=%s user=842", g.jwt())
	one("jwt in json", `{"access_token": "%s", "expires_in": 3600}`, g.jwt())

	// Private keys of every PEM type.
	for _, k := range []struct {
		kind, typ string
		n         int
		headers   map[string]string
	}{
		{"rsa private key", "RSA PRIVATE KEY", 1190, nil},
		{"rsa private key, encrypted (legacy)", "RSA PRIVATE KEY", 1190, map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC," + strings.ToUpper(g.s(hexs, 32))}},
		{"ec private key", "EC PRIVATE KEY", 121, nil},
		{"openssh private key", "OPENSSH PRIVATE KEY", 400, nil},
		{"dsa private key", "DSA PRIVATE KEY", 444, nil},
		{"pkcs8 private key", "PRIVATE KEY", 1218, nil},
		{"pkcs8 encrypted private key", "ENCRYPTED PRIVATE KEY", 1298, nil},
	} {
		text, lines := g.pemBlock(k.typ, k.n, k.headers)
		add(k.kind, text, lines...)
	}
	{
		body := base64.StdEncoding.EncodeToString(g.bytes(900))
		var b strings.Builder
		b.WriteString("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n")
		for len(body) > 64 {
			b.WriteString(body[:64] + "\n")
			body = body[64:]
		}
		b.WriteString(body + "\n=" + g.s(b64, 4) + "\n-----END PGP PRIVATE KEY BLOCK-----")
		add("pgp private key block", b.String(), bodyLines(b.String())...)
	}
	{
		text, _ := g.pemBlock("RSA PRIVATE KEY", 1190, nil)
		cut := text[:len(text)/2]
		add("private key cut by truncation", cut, bodyLines(cut)...)
	}

	// Credentials in URLs.
	for _, u := range []string{"https://deploy:%s@git.example.com/shop/orders.git", "postgres://orders_app:%s@10.20.4.31:5432/orders?sslmode=require",
		"postgresql://replicator:%s@db-2.internal:5432/postgres", "mysql://root:%s@127.0.0.1:3306/shop", "mongodb+srv://shop:%s@cluster0.ab1cd.mongodb.net/shop?retryWrites=true",
		"redis://:%s@cache.internal:6379/0", "amqp://orders:%s@rabbitmq:5672/%%2f"} {
		one("url with password", "DATABASE_URL="+u, g.password())
	}
	one("basic auth header", "Authorization: Basic %s", base64.StdEncoding.EncodeToString([]byte("admin:"+g.password())))
	one("curl -u", "curl -sS -u admin:%s https://grafana.internal/api/health", g.password())

	// password= and secret: in config files and environment dumps.
	one("ini password", "password=%s", g.password())
	one("properties password", "spring.datasource.password=%s", g.password())
	one("yaml secret", "  secret: %s", g.password())
	one("yaml client secret", "  client_secret: \"%s\"", g.s(alnum, 32))
	one("yaml quoted passphrase with spaces", "passphrase: \"%s\"", strings.Join([]string{g.s(lower, 7), g.s(lower, 5), g.s(lower, 8), g.s(lower, 6)}, " "))
	one("json password", `{"user": "orders", "password": "%s", "host": "db"}`, g.password())
	one("env MYSQL_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD=%s", g.password())
	one("env DB_PASS", "DB_PASS=%s", g.password())
	one("env SECRET_KEY_BASE", "SECRET_KEY_BASE=%s", g.s(hexs, 128))
	one("env API_KEY", "API_KEY=%s", g.s(alnum, 32))
	one("command line password flag", "/usr/bin/pgbouncer --password %s -q", g.password())
	one("CI job token", "CI_JOB_TOKEN=%s", g.s(alnum, 20))
	one("azure devops pat", "AZURE_DEVOPS_EXT_PAT=%s", g.s(lower+digits, 52))
	one("signing key", "  signing_key: %s", g.s(hexs, 32))
	one("mysql -p", "mysql -h db -u root -p%s shop -e 'show processlist'", g.password())
	one("sshpass -p", "sshpass -p '%s' ssh deploy@web-1 uptime", g.password())
	one("redis-cli -a", "redis-cli -h cache -a %s info memory", g.s(alnum, 16))
	one("docker login -p", "docker login -u ci -p %s registry.example.com", g.password())
	one(".netrc", "machine api.example.com login ops@example.com password %s", g.password())
	one("x-api-key header", "< x-api-key: %s", g.s(hexs, 32))
	one("jdbc url password", "jdbc:mysql://db:3306/shop?user=root&password=%s&useSSL=true", g.password())
	{
		key, _ := g.pemBlock("PRIVATE KEY", 1218, nil)
		enc := base64.StdEncoding.EncodeToString([]byte(key + "\n"))
		add("kubernetes secret tls.key", "  tls.key: "+enc, enc)
	}
	one("kubernetes secret data", "data:\n  password: %s", base64.StdEncoding.EncodeToString([]byte(g.password())))
	return out
}

// Output interleaves the secrets with ordinary lines, as a step's output
// would carry them.
func Output(secrets []Secret) string {
	var b strings.Builder
	for i, s := range secrets {
		fmt.Fprintf(&b, "Dec 04 10:%02d:%02d web-17 app[2210]: step %d of %d ok\n", i/60, i%60, i, len(secrets))
		b.WriteString(s.Text + "\n")
	}
	return b.String()
}

// Leaks returns, for every secret of which some part of 8 bytes or more is
// in out, its kind and that part.
func Leaks(out string, secrets []Secret) []string {
	contains := func(part string) bool { return strings.Contains(out, part) }
	if len(out) > 64<<10 {
		// One pass over a large output instead of one per part.
		grams := make(map[string]bool, len(out))
		for i := 0; i+8 <= len(out); i++ {
			grams[out[i:i+8]] = true
		}
		contains = func(part string) bool {
			if len(part) == 8 {
				return grams[part]
			}
			return strings.Contains(out, part)
		}
	}
	var leaks []string
	for _, s := range secrets {
	values:
		for _, v := range s.Values {
			n := min(8, len(v))
			for i := 0; i+n <= len(v); i++ {
				if contains(v[i : i+n]) {
					leaks = append(leaks, fmt.Sprintf("%s: %q of %q", s.Kind, v[i:i+n], v))
					continue values
				}
			}
		}
	}
	return leaks
}

// Kinds counts the kinds among secrets.
func Kinds(secrets []Secret) int {
	k := map[string]bool{}
	for _, s := range secrets {
		k[s.Kind] = true
	}
	return len(k)
}
