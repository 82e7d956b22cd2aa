package ui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/internal/testtool"
	"github.com/switchyard-io/switchyard/store"
)

// devServer is a `registry dev --acl` process with its admin secret.
type devServer struct {
	addr   string
	secret string
	admin  *client.API
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var secretLine = regexp.MustCompile(`secret:\s+(swy_\S+)`)

func startDev(t *testing.T, drills string) *devServer {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "registry")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/registry").CombinedOutput(); err != nil {
		t.Fatalf("build the registry: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "dev", "--acl", "--http-addr", addr, "--dns-addr", "", "--xds-addr", "", "--drill-reports", drills)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := secretLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	var secret string
	select {
	case secret = <-found:
	case <-time.After(20 * time.Second):
		t.Fatal("registry dev --acl printed no admin token")
	}
	a, err := client.NewAPI("http://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &devServer{addr: addr, secret: secret, admin: a.WithToken(secret)}
}

// register registers a persistent instance without a check (healthy for
// as long as the test takes), or an ephemeral one (healthy until its TTL).
func (d *devServer) register(t *testing.T, svc, id, dc string, ephemeral bool) {
	t.Helper()
	if _, err := d.admin.Register(context.Background(), store.DefaultNamespace, svc, id,
		client.Registration{Address: "10.0.0.1", Port: 8080, Ephemeral: &ephemeral, Locality: store.Locality{Region: "r1", Datacenter: dc}}); err != nil {
		t.Fatalf("register %s/%s: %v", svc, id, err)
	}
}

func chromium(t *testing.T) string {
	t.Helper()
	return testtool.Find(t, "chromium", "chromium", "chromium-browser", "google-chrome")
}

// The console in a real headless Chromium against a real registry dev with
// access control: every page loads, a registration appears without a
// reload, a weight changed in the page is what the API then answers, a
// write without a token shows the 401 in words, 1,000 instances page and
// filter, and every form control has a label. Screenshots of every page go
// to the test's temporary folder (or $SWITCHYARD_SCREENSHOTS).
func TestConsoleInChromium(t *testing.T) {
	browser := chromium(t)
	drills := t.TempDir()
	writeDrill(t, drills)
	d := startDev(t, drills)
	d.register(t, "web", "w1", "dc-a", false)
	d.register(t, "web", "w2", "dc-b", true)
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 1000; i += 8 {
				dc := []string{"dc-a", "dc-b"}[i%2]
				if _, err := d.admin.Register(context.Background(), store.DefaultNamespace, "big", fmt.Sprintf("b-%04d", i),
					client.Registration{Address: "10.0.1.1", Port: 9000 + i%1000, Ephemeral: new(bool), Locality: store.Locality{Datacenter: dc}}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("register big: %v", err)
	}

	shots := os.Getenv("SWITCHYARD_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelT()

	// Script errors and CSP violations fail the test.
	var mu sync.Mutex
	var pageErrors []string
	if err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			mu.Lock()
			pageErrors = append(pageErrors, fmt.Sprintf("exception: %s %v", e.ExceptionDetails.Text, e.ExceptionDetails.Exception))
			mu.Unlock()
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				mu.Lock()
				pageErrors = append(pageErrors, fmt.Sprintf("console.error: %v", e.Args))
				mu.Unlock()
			}
		}
	}); err != nil {
		t.Fatal(err)
	}

	base := "http://" + d.addr + "/ui/"
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// textOf reads an element's text at once ("" when it is not there).
	textOf := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	waitText := func(sel, want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			s := textOf(sel)
			if strings.Contains(s, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not show %q: %q", sel, want, s)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	// clickRow clicks a button in the instance table. The page redraws
	// the table whenever its blocking query sees a change, so a node found
	// first and clicked after (chromedp.Click) may be gone by then: the
	// element is found and clicked in one step, inside the page.
	clickRow := func(sel string) {
		t.Helper()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
			`(() => { const e = document.querySelector(%q); if (!e) return false; e.click(); return true })()`, sel)))
		if err != nil || !ok {
			t.Fatalf("click %s: found %v (%v)", sel, ok, err)
		}
	}
	// setValue types into a field as a person would: the value, then the
	// input and change events.
	setValue := func(sel, v string) {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
			`(() => { const e = document.querySelector(%q); e.focus(); e.value = %q; e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return e.value })()`, sel, v)))
		if err != nil || got != v {
			t.Fatalf("set %s to %q: got %q (%v)", sel, v, got, err)
		}
	}

	// 1. Without a token, the cluster refuses, and the page says so.
	do(chromedp.Navigate(base+"#/namespaces"), chromedp.WaitVisible(css("h1")))
	waitText("#message", "401")
	shot("00-no-token")

	// 2. With the admin token: namespaces.
	do(chromedp.SendKeys(css("#token-input"), d.secret), chromedp.Click(css("#token-save")),
		chromedp.WaitVisible(css(`a[href="#/ns/default"]`)))
	waitText("#token-state", "admin:*")
	shot("01-namespaces")

	// 3. Services, with counts by datacenter.
	do(chromedp.Click(css(`a[href="#/ns/default"]`)), chromedp.WaitVisible(css(`a[href="#/ns/default/svc/web"]`)))
	waitText("main table", "dc-a 1/1")
	waitText("main table", "1000 / 1000")
	shot("02-services")

	// 4. A service: a registration appears without a reload.
	do(chromedp.Click(css(`a[href="#/ns/default/svc/web"]`)), chromedp.WaitVisible(css(`tr[data-id="w1"]`)))
	d.register(t, "web", "w3", "dc-a", false)
	do(chromedp.WaitVisible(css(`tr[data-id="w3"]`)))
	// w2 is ephemeral: its last heartbeat (its registration) is shown.
	waitText(`tr[data-id="w2"] td.age`, " ago")
	if s := textOf(`tr[data-id="w1"] td.age`); s != "checked by a server" {
		t.Errorf("a persistent instance's heartbeat cell: %q", s)
	}
	shot("03-service")

	// A redraw keeps what is being typed, and the focus: someone typing a
	// weight while the list changes loses neither.
	setValue("#w-w1", "55")
	d.register(t, "web", "w4", "dc-b", false)
	do(chromedp.WaitVisible(css(`tr[data-id="w4"]`)))
	if v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("w-w1").value + "|" + document.activeElement.id`)); err != nil || v != "55|w-w1" {
		t.Fatalf("after a redraw, the typed weight and the focus: %q (%v), want 55|w-w1", v, err)
	}
	// A weight that is not a whole number is refused in the page.
	setValue("#w-w2", "")
	clickRow(`#save-w2`)
	waitText("#message", "must be a whole number")
	// The skip link moves to the content; it is not a page.
	do(chromedp.Click(css("a.skip")))
	if h := textOf("h1"); h != "web" {
		t.Fatalf("after the skip link the page shows %q", h)
	}

	// 5. A weight changed in the page is what the API answers.
	setValue("#w-w1", "42")
	clickRow(`tr[data-id="w1"] form button`)
	waitText("#message", "Weight of w1 is now 42")
	weights := func() map[string]int {
		t.Helper()
		got, err := d.admin.Lookup(context.Background(), store.DefaultNamespace, "web", client.LookupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, in := range got.Instances {
			out[in.ID] = in.Weight
		}
		return out
	}
	if w := weights(); w["w1"] != 42 || w["w2"] != store.DefaultWeight {
		t.Fatalf("weights through the API after the change in the page: %v", w)
	}

	// Disable (graceful offline) and the service's settings, from the page.
	clickRow(`tr[data-id="w3"] td:nth-child(5) button`)
	waitText("#message", "w3 is disabled")
	setValue("#set-protect", "0.3")
	setValue("#set-ratio", "0.75")
	do(chromedp.Click(css(`form.settings button[type="submit"]`)))
	waitText("#message", "Settings of web saved")
	got, err := d.admin.Lookup(context.Background(), store.DefaultNamespace, "web", client.LookupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Settings.ProtectThreshold != 0.3 || got.Settings.MinHealthyRatio != 0.75 {
		t.Errorf("settings through the API after the change in the page: %+v", got.Settings)
	}
	for _, in := range got.Instances {
		if in.ID == "w3" && in.Enabled {
			t.Errorf("w3 is still enabled after Disable in the page")
		}
	}

	// A namespace's fallback, from the namespaces page.
	if code := putJSON(t, d, "/v1/namespaces/staging", `{"description": "pre-production"}`); code != 200 {
		t.Fatalf("create staging: %d", code)
	}
	do(chromedp.Navigate(base+"#/namespaces"), chromedp.WaitVisible(css("#fallback-staging")))
	setValue("#fallback-staging", "default")
	do(chromedp.Click(css(`#fallback-staging + button`)))
	waitText("#message", "staging now falls back to default")
	waitText("main table", "staging → default")

	// 6. A write without a token: the 401, in words. Token-less reads are
	// allowed for this (anonymous may read default), writes are not.
	if _, err := d.admin.UpdateToken(context.Background(), store.AnonymousAccessor, wire.TokenRequest{Rules: []string{"read:default"}}); err != nil {
		t.Fatal(err)
	}
	do(chromedp.Navigate(base+"#/ns/default/svc/web"), chromedp.WaitVisible(css(`tr[data-id="w2"]`)),
		chromedp.Click(css("#token-forget")), chromedp.WaitVisible(css(`tr[data-id="w2"]`)))
	setValue("#w-w2", "7")
	clickRow(`tr[data-id="w2"] form button`)
	waitText("#message", "Not allowed without a valid token (401)")
	if msg := textOf("#message"); !strings.Contains(msg, "Enter a token") {
		t.Errorf("the 401 message does not say what to do: %q", msg)
	}
	shot("04-write-without-token")
	if w := weights(); w["w2"] != store.DefaultWeight {
		t.Fatalf("a write without a token changed w2's weight to %d", w["w2"])
	}

	// 7. 1,000 instances: pages of 100, filtered by datacenter.
	do(chromedp.Navigate(base+"#/ns/default/svc/big"), chromedp.WaitVisible(css(`tr[data-id="b-0000"]`)))
	waitText("#range", "Showing 1–100 of 1000")
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("tbody tr[data-id]").length`))
	if err != nil || rows != 100 {
		t.Fatalf("rows on the first page: %d (%v), want 100", rows, err)
	}
	setValue("#f-dc", "dc-b")
	waitText("#range", "of 500 (filtered from 1000)")
	do(chromedp.Click(css("#page-next")))
	waitText("#range", "Showing 101–200 of 500")
	// Every form control on the page has a label (keyboard and screen
	// reader users reach them by it).
	unlabelled, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("input,select")].filter(e => !(e.labels && e.labels.length)).map(e => e.id || e.name || e.outerHTML)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(unlabelled) > 0 {
		t.Errorf("form controls without a label: %v", unlabelled)
	}
	shot("05-service-1000")

	// 8. Cluster, with the RTT heat map; 9. drills, with a timeline. Both
	// need the admin token again.
	do(chromedp.SendKeys(css("#token-input"), d.secret), chromedp.Click(css("#token-save")),
		chromedp.Navigate(base+"#/cluster"), chromedp.WaitVisible(css("table.heat")))
	waitText("main table", "dev (this server)")
	shot("06-cluster")

	// 10. The topology: regions, datacenters and units drawn with their
	// servers and healthy shares, following the catalog live.
	do(chromedp.Navigate(base+"#/topology"), chromedp.WaitVisible(css("figure.topology svg")))
	waitText("figure.topology", "dev · leader")
	// dataOf reads a drawn element's data-* attributes ("" when it is not there).
	dataOf := func(sel string) map[string]string {
		t.Helper()
		m, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](fmt.Sprintf(
			`(() => { const e = document.querySelector(%q); return e ? {...e.dataset} : {} })()`, sel)))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	waitData := func(sel, key, want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for dataOf(sel)[key] != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s = %q, want %q", sel, key, dataOf(sel)[key], want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Each datacenter is drawn with the server's own counts. A datacenter
	// name may be drawn in more than one region (the big service's
	// instances have no region): its boxes add up. The page redraws every
	// 3 s, so the two are compared until they agree (an ephemeral instance
	// may turn unhealthy meanwhile).
	sum := func(dc, key string) int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(
			`[...document.querySelectorAll('g.dc[data-dc=%q]')].reduce((n, e) => n + Number(e.dataset[%q]), 0)`, dc, key)))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var top wire.Topology
		getJSON(t, d, "/v1/topology", &top)
		byDC := map[string]wire.Count{}
		for _, l := range top.Localities {
			n := byDC[l.Datacenter]
			n.Instances, n.Healthy = n.Instances+l.Instances, n.Healthy+l.Healthy
			byDC[l.Datacenter] = n
		}
		if byDC["dc-a"].Instances < 500 || byDC["dc-b"].Instances < 500 {
			t.Fatalf("the server counts %v: want 500 or more in dc-a and dc-b", byDC)
		}
		var diff []string
		for _, dc := range []string{"dc-a", "dc-b"} {
			if got := (wire.Count{Instances: sum(dc, "instances"), Healthy: sum(dc, "healthy")}); got != byDC[dc] {
				diff = append(diff, fmt.Sprintf("%s drawn with %+v, the server counts %+v", dc, got, byDC[dc]))
			}
		}
		if len(diff) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the topology does not show the server's counts: %v", diff)
		}
	}
	if got := dataOf(`g.server[data-server="dev"]`); got["role"] != "leader" || got["status"] != "alive" {
		t.Errorf("the server drawn as %v, want the alive leader", got)
	}
	// A new datacenter appears without a reload, and its instance, which
	// never heartbeats, turns red there after its TTL.
	if code := putJSON(t, d, "/v1/namespaces/default/services/web/instances/w9",
		`{"address": "10.0.0.9", "port": 80, "locality": {"region": "r2", "datacenter": "dc-z", "unit": "u1"}, "check": {"ttl": "1s"}}`); code != http.StatusOK {
		t.Fatalf("register w9: %d", code)
	}
	waitData(`g.dc[data-dc="dc-z"]`, "instances", "1")
	waitData(`g.unit[data-unit="dc-z/u1"]`, "healthy", "0")
	waitText("figure.topology + table, main table", "dc-z")
	shot("08-topology")

	// 11. Forms: create a namespace (a bad name is refused in words and
	// creates nothing), register an instance and deregister it, create a
	// token (its secret shown once) and revoke it.
	confirmAll := func() {
		t.Helper()
		do(chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`))
	}
	do(chromedp.Navigate(base+"#/namespaces"), chromedp.WaitVisible(css("#ns-create")))
	setValue("#ns-name", "Not A Label")
	clickRow("#ns-create")
	waitText("#message", "The server refused (400")
	setValue("#ns-name", "team-x")
	setValue("#ns-description", "made in the console")
	clickRow("#ns-create")
	waitText("#message", "Namespace team-x created")
	waitText("main table", "made in the console")
	var nsList wire.NamespacesResponse
	getJSON(t, d, "/v1/namespaces", &nsList)
	if !slices.ContainsFunc(nsList.Namespaces, func(n store.Namespace) bool { return n.Name == "team-x" }) ||
		slices.ContainsFunc(nsList.Namespaces, func(n store.Namespace) bool { return strings.Contains(n.Name, " ") }) {
		t.Errorf("namespaces after the forms: %+v, want team-x and nothing else new", nsList.Namespaces)
	}
	shot("09-namespace-created")

	do(chromedp.Navigate(base+"#/ns/default/svc/web"), chromedp.WaitVisible(css("#reg-submit")))
	setValue("#reg-id", "w-console")
	setValue("#reg-address", "10.0.7.7")
	setValue("#reg-port", "8081")
	setValue("#reg-datacenter", "dc-c")
	clickRow("#reg-submit")
	waitText("#message", "w-console registered")
	waitText("main table", "10.0.7.7:8081")
	confirmAll()
	clickRow("#remove-w-console")
	waitText("#message", "w-console deregistered")
	if _, err := d.admin.Lookup(context.Background(), store.DefaultNamespace, "web", client.LookupOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); strings.Contains(textOf("main table"), "w-console"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the deregistered instance is still listed")
		}
	}

	// 12. History: the service's last hour as a chart, an instance's
	// events as a timeline and in words.
	do(chromedp.WaitVisible(css("svg.service-chart")))
	if n := dataOf("svg.service-chart")["samples"]; n == "" || n == "0" {
		t.Errorf("the service chart has %q samples", n)
	}
	clickRow("#check-w1")
	waitText("td.detail ol.events", "registered")
	waitText("td.detail ol.events", "weight set to 42")
	waitText("td.detail p.flaps", "Never unhealthy since")
	shot("11-history")

	// 13. The keyboard alone: from the tokens form's first field, typing
	// and Tab reach every field and the button, and Enter submits.
	do(chromedp.Navigate(base+"#/tokens"), chromedp.WaitVisible(css("#tok-create")), chromedp.Focus(css("#tok-rules")),
		chromedp.KeyEvent("read:default"), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent("typed only"),
		chromedp.KeyEvent(kb.Tab))
	if focused := textOf("#tok-create") + "|" + func() string {
		id, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}(); focused != "Create token|tok-create" {
		t.Fatalf("after two Tabs the focus is on %q, want the Create token button", focused)
	}
	do(chromedp.KeyEvent(kb.Enter))
	waitText("#tok-secret", "shown this once")
	waitText("main table", "typed only")

	do(chromedp.Navigate(base+"#/tokens"), chromedp.WaitVisible(css("#tok-create")))
	setValue("#tok-rules", "read:team-x")
	setValue("#tok-description", "console-made")
	clickRow("#tok-create")
	waitText("#tok-secret", "shown this once")
	newSecret := textOf("#tok-new-secret")
	if !strings.HasPrefix(newSecret, "swy_") {
		t.Fatalf("the new token's secret shown as %q", newSecret)
	}
	waitText("main table", "console-made")
	shot("10-tokens")
	var toks wire.TokensResponse
	getJSON(t, d, "/v1/acl/tokens", &toks)
	i := slices.IndexFunc(toks.Tokens, func(k wire.Token) bool { return k.Description == "console-made" })
	if i < 0 || !slices.Equal(toks.Tokens[i].Rules, []string{"read:team-x"}) {
		t.Fatalf("tokens after the form: %+v", toks.Tokens)
	}
	confirmAll()
	clickRow("#revoke-" + toks.Tokens[i].AccessorID)
	waitText("#message", "Token "+toks.Tokens[i].AccessorID+" revoked")
	var after wire.TokensResponse // a fresh value: decoding reuses a slice's elements
	getJSON(t, d, "/v1/acl/tokens", &after)
	if slices.ContainsFunc(after.Tokens, func(k wire.Token) bool { return k.Description == "console-made" }) {
		t.Errorf("the revoked token is still listed by the server: %+v; the page says %q", after.Tokens, textOf("#message"))
	}
	do(chromedp.Navigate(base+"#/drills"), chromedp.WaitVisible(css("section.drill")),
		chromedp.Click(css("section.drill button")), chromedp.WaitVisible(css("section.drill figure img")))
	waitText("section.drill", "Failed: 1 criteria")
	imgWidth, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelector("section.drill figure img").naturalWidth`))
	if err != nil || imgWidth == 0 {
		t.Fatalf("the drill timeline did not render: width %d (%v)", imgWidth, err)
	}
	shot("07-drills")

	mu.Lock()
	defer mu.Unlock()
	for _, e := range pageErrors {
		t.Errorf("page error: %s", e)
	}
	for _, name := range []string{"00-no-token", "01-namespaces", "02-services", "03-service", "04-write-without-token", "05-service-1000", "06-cluster", "07-drills", "08-topology", "09-namespace-created", "10-tokens", "11-history"} {
		if st, err := os.Stat(filepath.Join(shots, name+".png")); err != nil || st.Size() < 1000 {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
	t.Logf("screenshots in %s", shots)
}

// adminDo sends a request with the admin token; the caller closes the body.
func adminDo(t *testing.T, d *devServer, method, path string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+d.addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Switchyard-Token", d.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// getJSON GETs path with the admin token and decodes the answer into out.
func getJSON(t *testing.T, d *devServer, path string, out any) {
	t.Helper()
	resp := adminDo(t, d, http.MethodGet, path, nil)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

func putJSON(t *testing.T, d *devServer, path, body string) int {
	t.Helper()
	resp := adminDo(t, d, http.MethodPut, path, strings.NewReader(body))
	resp.Body.Close()
	return resp.StatusCode
}

// writeDrill writes a report as registry drill does: JSON and an SVG.
func writeDrill(t *testing.T, dir string) {
	t.Helper()
	base := filepath.Join(dir, "cut-datacenter-20261126T010203Z")
	js := `{"scenario": "cut-datacenter", "callers": {}, "failures": ["a caller was served by the cut datacenter 12 s after the cut"]}`
	svg := `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="100"><rect width="400" height="100" fill="#eef"/><text x="10" y="50">timeline</text></svg>`
	for name, body := range map[string]string{base + ".json": js, base + ".svg": svg} {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
