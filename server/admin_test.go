package server

import (
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestRedactArgs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in, want []string
	}{
		{"space", []string{"registry", "server", "--gossip-key", "S3CRET", "--node-id", "a"},
			[]string{"registry", "server", "--gossip-key", redacted, "--node-id", "a"}},
		{"equals", []string{"registry", "--gossip-key=S3CRET", "--http-addr=:7400"},
			[]string{"registry", "--gossip-key=" + redacted, "--http-addr=:7400"}},
		{"one dash", []string{"registry", "-gossip-key", "S3CRET", "-token=T"},
			[]string{"registry", "-gossip-key", redacted, "-token=" + redacted}},
		{"any case and word", []string{"r", "--Admin-Password", "P", "--client-secret=X", "--tls-key", "/k.pem", "--bootstrap-token-file", "/t"},
			[]string{"r", "--Admin-Password", redacted, "--client-secret=" + redacted, "--tls-key", redacted, "--bootstrap-token-file", redacted}},
		{"last flag without value", []string{"r", "--gossip-key"}, []string{"r", "--gossip-key"}},
		{"value like a flag", []string{"r", "--token", "--x"}, []string{"r", "--token", redacted}},
		{"after --", []string{"r", "--", "--token", "T"}, []string{"r", "--", "--token", "T"}},
		{"program name", []string{"/opt/key-server/registry", "dev"}, []string{"/opt/key-server/registry", "dev"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := redactArgs(tc.in); !slices.Equal(got, tc.want) {
				t.Fatalf("redactArgs(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// Whoever reaches the admin listener may profile the server, not read the
// secrets on its command line: /debug/pprof/cmdline shows the flags with
// the secret values replaced, and the index links to nothing that shows
// them.
func TestAdminCmdlineHidesSecrets(t *testing.T) {
	const key, token = "c2VjcmV0LWdvc3NpcC1rZXktMzItYnl0ZXMtbG9uZyE=", "swy_notsosecret0123456789"
	saved := os.Args
	os.Args = []string{"registry", "server", "--node-id", "a", "--gossip-key", key, "--token=" + token, "--http-addr", "127.0.0.1:0"}
	t.Cleanup(func() { os.Args = saved })
	c := startCluster(t, 1, func(cfg *Config) { cfg.AdminAddr = "127.0.0.1:0" })
	base := "http://" + c.servers[0].AdminAddr()
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return string(b)
	}
	got := get("/debug/pprof/cmdline")
	if strings.Contains(got, key) || strings.Contains(got, token) {
		t.Fatalf("cmdline shows a secret: %q", got)
	}
	if want := strings.Join([]string{"registry", "server", "--node-id", "a", "--gossip-key", redacted, "--token=" + redacted, "--http-addr", "127.0.0.1:0"}, "\x00"); got != want {
		t.Fatalf("cmdline = %q, want %q", got, want)
	}
	index := get("/debug/pprof/")
	if strings.Contains(index, key) || strings.Contains(index, token) {
		t.Fatalf("pprof index shows a secret")
	}
	for _, link := range []string{"cmdline", "goroutine?debug=2"} {
		if body := get("/debug/pprof/" + link); strings.Contains(body, key) || strings.Contains(body, token) {
			t.Fatalf("/debug/pprof/%s shows a secret", link)
		}
	}
}
