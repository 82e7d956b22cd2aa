package check

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const chartDir = "../switchyard"

// A gossip key as `registry keygen` makes one.
const gossipKey = "q0BiWlzlfFHj8vsmc3EdD8YN6zS+MqC0oWxdXoLY09I="

// serviceMonitor is the part of the Prometheus Operator's type the chart
// writes; decoding into it strictly catches a misspelt field.
type serviceMonitor struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   map[string]any     `json:"metadata"`
	Spec       serviceMonitorSpec `json:"spec"`
}

type serviceMonitorSpec struct {
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	Endpoints []struct {
		Port     string `json:"port"`
		Path     string `json:"path"`
		Interval string `json:"interval"`
	} `json:"endpoints"`
}

// rendered is one rendering: its objects by kind and name.
type rendered struct {
	statefulSets    map[string]*appsv1.StatefulSet
	deployments     map[string]*appsv1.Deployment
	services        map[string]*corev1.Service
	secrets         map[string]*corev1.Secret
	pdbs            map[string]*policyv1.PodDisruptionBudget
	serviceMonitors map[string]*serviceMonitor
	notes           string
}

// render renders the chart with vals (over values.yaml) as release
// "reg" in namespace "infra".
func render(t *testing.T, vals map[string]any) (*rendered, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load the chart: %v", err)
	}
	rv, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: "reg", Namespace: "infra", IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return nil, err
	}
	r := &rendered{statefulSets: map[string]*appsv1.StatefulSet{}, deployments: map[string]*appsv1.Deployment{},
		services: map[string]*corev1.Service{}, secrets: map[string]*corev1.Secret{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, serviceMonitors: map[string]*serviceMonitor{}}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		body := files[name]
		if strings.HasSuffix(name, "NOTES.txt") {
			r.notes = body
			continue
		}
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for k, doc := range strings.Split(body, "\n---") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			if err := r.decode(doc); err != nil {
				t.Errorf("%s, document %d: %v\n%s", filepath.Base(name), k, err, doc)
			}
		}
	}
	return r, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// decode reads one YAML document strictly into the type of its kind.
func (r *rendered) decode(doc string) error {
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		return fmt.Errorf("not YAML: %w", err)
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return err
	}
	key := head.APIVersion + " " + head.Kind
	switch key {
	case "apps/v1 StatefulSet":
		return strictInto(js, r.statefulSets, head.Metadata.Name)
	case "apps/v1 Deployment":
		return strictInto(js, r.deployments, head.Metadata.Name)
	case "v1 Service":
		return strictInto(js, r.services, head.Metadata.Name)
	case "v1 Secret":
		return strictInto(js, r.secrets, head.Metadata.Name)
	case "policy/v1 PodDisruptionBudget":
		return strictInto(js, r.pdbs, head.Metadata.Name)
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return strictInto(js, r.serviceMonitors, head.Metadata.Name)
	}
	return fmt.Errorf("an object of %q, which this test does not know", key)
}

// strictInto decodes js into a new T, refusing any field T does not have,
// and files it under name.
func strictInto[T any](js []byte, into map[string]*T, name string) error {
	v := new(T)
	into[name] = v
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func mustRender(t *testing.T, vals map[string]any) *rendered {
	t.Helper()
	r, err := render(t, vals)
	if err != nil {
		t.Fatalf("render %v: %v", vals, err)
	}
	return r
}

// args of the one container of a pod template.
func args(t *testing.T, spec corev1.PodSpec) []string {
	t.Helper()
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	return spec.Containers[0].Args
}

func flagValue(a []string, flag string) (string, bool) {
	for _, s := range a {
		if v, ok := strings.CutPrefix(s, flag+"="); ok {
			return v, true
		}
		if s == flag {
			return "", true
		}
	}
	return "", false
}

// Helm's own linter finds nothing wrong with the chart.
func TestLint(t *testing.T) {
	l := lint.RunAll(chartDir, map[string]any{"gossip": map[string]any{"key": gossipKey}}, "infra")
	for _, m := range l.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
}

// The defaults: three voters that bootstrap together and find each other
// through the headless service, with a gossip key, tokens on, a volume
// each, readiness on /v1/health, a budget of one disruption.
func TestDefaults(t *testing.T) {
	r := mustRender(t, map[string]any{"gossip": map[string]any{"key": gossipKey}})
	ss := r.statefulSets["reg-switchyard"]
	if ss == nil {
		t.Fatalf("no StatefulSet reg-switchyard: %v", r.statefulSets)
	}
	if *ss.Spec.Replicas != 3 || ss.Spec.ServiceName != "reg-switchyard-headless" || len(ss.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("statefulset: replicas %d, service %q, %d claims", *ss.Spec.Replicas, ss.Spec.ServiceName, len(ss.Spec.VolumeClaimTemplates))
	}
	a := args(t, ss.Spec.Template.Spec)
	for flag, want := range map[string]string{
		"--node-id": "$(POD_NAME)", "--bootstrap-expect": "3", "--voters": "3", "--data-dir": "/data/raft",
		"--advertise-raft-addr": "$(POD_IP):7401", "--xds-addr": "0.0.0.0:7404", "--dns-addr": "0.0.0.0:7453",
		"--join":           "reg-switchyard-0.reg-switchyard-headless.infra.svc:7402,reg-switchyard-1.reg-switchyard-headless.infra.svc:7402,reg-switchyard-2.reg-switchyard-headless.infra.svc:7402",
		"--raft-plaintext": "",
	} {
		if got, ok := flagValue(a, flag); !ok || got != want {
			t.Errorf("%s = %q (given %v), want %q", flag, got, ok, want)
		}
	}
	if a[0] != "server" {
		t.Errorf("first argument %q, want the server command", a[0])
	}
	for _, f := range []string{"--insecure-dev", "--tls-cert", "--role"} {
		if _, ok := flagValue(a, f); ok {
			t.Errorf("%s given by default", f)
		}
	}
	c := ss.Spec.Template.Spec.Containers[0]
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/v1/health" || p.HTTPGet.Scheme != corev1.URISchemeHTTP {
		t.Errorf("readiness probe %+v", p)
	}
	var gossipEnv bool
	for _, e := range c.Env {
		if e.Name == "REGISTRY_GOSSIP_KEY" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "reg-switchyard-gossip" {
			gossipEnv = true
		}
	}
	if !gossipEnv {
		t.Errorf("no REGISTRY_GOSSIP_KEY from the gossip Secret: %+v", c.Env)
	}
	if s := r.secrets["reg-switchyard-gossip"]; s == nil || s.StringData["gossip-key"] != gossipKey {
		t.Errorf("gossip Secret %+v", s)
	}
	h := r.services["reg-switchyard-headless"]
	if h == nil || h.Spec.ClusterIP != "None" || !h.Spec.PublishNotReadyAddresses {
		t.Errorf("headless service %+v", h)
	}
	svc := r.services["reg-switchyard"]
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%s/%d/%s", p.Name, p.Port, p.Protocol))
	}
	if want := []string{"http/7400/TCP", "dns-udp/53/UDP", "dns-tcp/53/TCP", "xds/7404/TCP"}; !slices.Equal(ports, want) {
		t.Errorf("service ports %v, want %v", ports, want)
	}
	pdb := r.pdbs["reg-switchyard"]
	if pdb == nil || pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("pod disruption budget %+v", pdb)
	}
	if len(r.statefulSets) != 1 || len(r.deployments) != 0 || len(r.serviceMonitors) != 0 {
		t.Errorf("read servers or a ServiceMonitor by default")
	}
	if sc := ss.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 65534 || sc.FSGroup == nil {
		t.Errorf("pod security context %+v", sc)
	}
	if !strings.Contains(r.notes, "Access control bootstrapped") || !strings.Contains(r.notes, "--raft-plaintext") {
		t.Errorf("notes:\n%s", r.notes)
	}
}

// Everything on: five voters, TLS from a Secret for the API, xDS and Raft,
// read servers, a ServiceMonitor, a bootstrap token, Consul's DNS names.
func TestEverythingOn(t *testing.T) {
	r := mustRender(t, map[string]any{
		"replicas": 5,
		"gossip":   map[string]any{"existingSecret": "my-gossip"},
		"tls":      map[string]any{"enabled": true, "secretName": "reg-tls"},
		"acl":      map[string]any{"bootstrapTokenSecret": "reg-admin"},
		"readServers": map[string]any{"enabled": true, "replicas": 4,
			"locality": map[string]any{"region": "eu", "datacenter": "eu-west-1b"}},
		"locality":       map[string]any{"region": "eu", "datacenter": "eu-west-1a", "unit": "r1"},
		"serviceMonitor": map[string]any{"enabled": true},
		"dns":            map[string]any{"consulDomain": "consul"},
		"extraArgs":      []any{"--default-ttl", "20s"},
	})
	ss := r.statefulSets["reg-switchyard"]
	a := args(t, ss.Spec.Template.Spec)
	for flag, want := range map[string]string{
		"--bootstrap-expect": "5", "--voters": "5", "--tls-cert": "/tls/tls.crt", "--raft-tls-ca": "/tls/ca.crt",
		"--bootstrap-token-file": "/bootstrap/token", "--admin-addr": "0.0.0.0:7409", "--dns-consul-domain": "consul",
		"--region": "eu", "--datacenter": "eu-west-1a", "--unit": "r1",
	} {
		if got, ok := flagValue(a, flag); !ok || got != want {
			t.Errorf("%s = %q (given %v), want %q", flag, got, ok, want)
		}
	}
	if _, ok := flagValue(a, "--raft-plaintext"); ok {
		t.Errorf("--raft-plaintext with TLS on")
	}
	if !slices.Contains(a, "--default-ttl") || !slices.Contains(a, "20s") {
		t.Errorf("extra args missing: %v", a)
	}
	if p := ss.Spec.Template.Spec.Containers[0].ReadinessProbe; p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		t.Errorf("readiness over HTTPS: %+v", p)
	}
	if _, ok := r.secrets["reg-switchyard-gossip"]; ok {
		t.Errorf("a gossip Secret made although gossip.existingSecret is given")
	}
	d := r.statefulSets["reg-switchyard-read"]
	if d == nil || *d.Spec.Replicas != 4 || d.Spec.ServiceName != "reg-switchyard-headless" || len(d.Spec.VolumeClaimTemplates) != 0 {
		t.Fatalf("read servers: %+v", d)
	}
	ra := args(t, d.Spec.Template.Spec)
	if v, _ := flagValue(ra, "--role"); v != "read" {
		t.Errorf("read server role %q", v)
	}
	if v, _ := flagValue(ra, "--datacenter"); v != "eu-west-1b" {
		t.Errorf("read server datacenter %q", v)
	}
	if _, ok := flagValue(ra, "--bootstrap-expect"); ok {
		t.Errorf("a read server with --bootstrap-expect (it refuses to start)")
	}
	if r.pdbs["reg-switchyard"].Spec.MaxUnavailable.IntValue() != 2 {
		t.Errorf("budget for five voters: %v", r.pdbs["reg-switchyard"].Spec.MaxUnavailable)
	}
	sm := r.serviceMonitors["reg-switchyard"]
	if sm == nil || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "admin" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("service monitor %+v", sm)
	}
	if r.services["reg-switchyard-metrics"] == nil {
		t.Errorf("no metrics service for the ServiceMonitor")
	}
}

// Values that cannot make a working cluster are refused with a message
// that says what to set.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		vals map[string]any
		want string
	}{
		{map[string]any{}, "registry keygen"},
		{map[string]any{"gossip": map[string]any{"key": gossipKey}, "replicas": 4}, "run 3 or 5 voters"},
		{map[string]any{"gossip": map[string]any{"key": gossipKey}, "tls": map[string]any{"enabled": true}}, "tls.secretName"},
	} {
		if _, err := render(t, tc.vals); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("values %v: %v, want an error containing %q", tc.vals, err, tc.want)
		}
	}
}

// With access control off (a development cluster) no gossip key is needed,
// and the servers say so.
func TestInsecureDev(t *testing.T) {
	r := mustRender(t, map[string]any{"acl": map[string]any{"insecureDev": true}, "replicas": 1, "xds": map[string]any{"enabled": false}})
	a := args(t, r.statefulSets["reg-switchyard"].Spec.Template.Spec)
	if _, ok := flagValue(a, "--insecure-dev"); !ok {
		t.Errorf("no --insecure-dev: %v", a)
	}
	if v, ok := flagValue(a, "--xds-addr"); !ok || v != "" {
		t.Errorf("--xds-addr %q with xds off", v)
	}
	if _, ok := flagValue(a, "--raft-plaintext"); ok {
		t.Errorf("--raft-plaintext with --insecure-dev (not needed)")
	}
}
