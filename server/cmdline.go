package server

import (
	"fmt"
	"net/http"
	"os"
	"strings"
)

// secretWords mark a flag whose value is a secret: --gossip-key, a token,
// a password. The value of such a flag never leaves the process through
// the admin listener.
var secretWords = []string{"key", "token", "secret", "password"}

const redacted = "[redacted]"

// cmdline serves /debug/pprof/cmdline like net/http/pprof, with the
// values of secret flags replaced: whoever reaches the admin listener may
// profile the server, not read its gossip key.
func cmdline(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, strings.Join(redactArgs(os.Args), "\x00"))
}

// redactArgs returns args with the value of every flag whose name holds a
// secret word replaced, in both forms: --flag=value and --flag value (one
// dash or two). The argument after a secret flag without "=" is taken as
// its value whatever it looks like: hiding too much costs nothing.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i := 1; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !secretName(name) {
			continue
		}
		if hasValue {
			out[i] = a[:strings.Index(a, "=")+1] + redacted
		} else if i+1 < len(out) {
			out[i+1] = redacted
			i++
		}
	}
	return out
}

func secretName(name string) bool {
	name = strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
