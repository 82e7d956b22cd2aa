package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/store"
)

// Endpoints the web console reads besides the catalog's: heartbeat ages,
// the RTT between datacenters, and drill reports.

// heartbeats answers how long ago this server heard each ephemeral
// instance of a service (gossip brings every server the others' heartbeats).
func (s *Server) heartbeats(c *gin.Context) {
	ns, svc := c.Param("ns"), c.Param("svc")
	v, err := s.cat.Service(ns, svc)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := wire.HeartbeatsResponse{Namespace: ns, Service: svc, AgeMs: map[string]float64{}}
	now := time.Now()
	for _, in := range v.Instances() {
		if !in.Ephemeral {
			continue
		}
		if t, ok := s.cat.LastHeard(ns, svc, in.ID); ok {
			out.AgeMs[in.ID] = float64(now.Sub(t).Microseconds()) / 1000
		}
	}
	setIndex(c, v.Index)
	c.JSON(http.StatusOK, out)
}

// topology counts the instances the caller may read by locality (region,
// datacenter, unit), for the console's picture of the system. One pass
// over the catalog's views.
func (s *Server) topology(c *gin.Context) {
	idx, namespaces, _ := s.cat.Namespaces()
	counts := map[store.Locality]*wire.Count{}
	for _, ns := range namespaces {
		if !s.AllowedSome(c, store.AccessRead, ns.Name) {
			continue
		}
		nv, svcs, err := s.cat.Services(ns.Name)
		if err != nil {
			continue // deleted since the list was taken
		}
		idx = max(idx, nv.Index)
		for _, v := range svcs {
			if !s.Allowed(c, store.AccessRead, ns.Name, v.Service.Name) {
				continue
			}
			idx = max(idx, v.Index)
			for _, in := range v.Instances() {
				n := counts[in.Locality]
				if n == nil {
					n = &wire.Count{}
					counts[in.Locality] = n
				}
				n.Instances++
				if in.Healthy {
					n.Healthy++
				}
			}
		}
	}
	out := wire.Topology{Index: idx, Localities: make([]wire.LocalityCount, 0, len(counts))}
	for l, n := range counts {
		out.Localities = append(out.Localities, wire.LocalityCount{Locality: l, Count: *n})
	}
	slices.SortFunc(out.Localities, func(a, b wire.LocalityCount) int { return strings.Compare(a.Path(), b.Path()) })
	setIndex(c, idx)
	c.JSON(http.StatusOK, out)
}

// instanceHistory answers an instance's last events as this server applied
// them (catalog.History): in memory, so a server restarted since knows
// only what followed.
func (s *Server) instanceHistory(c *gin.Context) {
	ns, svc, id := c.Param("ns"), c.Param("svc"), c.Param("id")
	setIndex(c, s.cat.Index())
	c.JSON(http.StatusOK, wire.InstanceHistory{Namespace: ns, Service: svc, ID: id, Events: s.cat.InstanceHistory(ns, svc, id)})
}

// serviceHistory answers a service's instance and healthy counts over the
// last hour, as this server saw them change.
func (s *Server) serviceHistory(c *gin.Context) {
	ns, svc := c.Param("ns"), c.Param("svc")
	setIndex(c, s.cat.Index())
	samples := s.cat.ServiceHistory(ns, svc)
	out := wire.ServiceHistory{Namespace: ns, Service: svc, Samples: make([]wire.HistorySample, len(samples))}
	for i, x := range samples {
		out.Samples[i] = wire.HistorySample{Time: x.Time, Instances: x.Instances, Healthy: x.Healthy}
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) rttMatrix(c *gin.Context) {
	if s.cfg.RTT == nil {
		c.JSON(http.StatusOK, wire.RTTMatrix{Datacenters: []string{}, RTTMs: map[string]map[string]float64{}})
		return
	}
	m, err := s.cfg.RTT(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, m)
}

// drillName is the base name `registry drill` gives a report:
// <scenario>-<UTC time>.
var drillName = regexp.MustCompile(`^([a-z0-9-]+)-(\d{8}T\d{6}Z)$`)

// ErrNoDrills: the server was started without a drill report folder.
var ErrNoDrills = errors.New("no drill reports")

func (s *Server) drillFile(name, ext string) (string, error) {
	if s.cfg.DrillReports == "" {
		return "", fmt.Errorf("%w: start the server with --drill-reports DIR (where registry drill writes them)", ErrNoDrills)
	}
	if !drillName.MatchString(name) {
		return "", fmt.Errorf("%w: %q is not a drill report name (scenario-20060102T150405Z)", ErrBadRequest, name)
	}
	return filepath.Join(s.cfg.DrillReports, name+ext), nil
}

func (s *Server) listDrills(c *gin.Context) {
	if s.cfg.DrillReports == "" {
		c.JSON(http.StatusOK, gin.H{"drills": []wire.DrillSummary{}, "configured": false})
		return
	}
	entries, err := os.ReadDir(s.cfg.DrillReports)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.fail(c, fmt.Errorf("read drill reports: %w", err))
		return
	}
	// The newest 50 by the time in their names, and only those read.
	type report struct{ name, scenario, time string }
	var found []report
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		m := drillName.FindStringSubmatch(name)
		if !ok || m == nil {
			continue
		}
		t, err := time.Parse("20060102T150405Z", m[2])
		if err != nil {
			continue
		}
		found = append(found, report{name, m[1], t.UTC().Format(time.RFC3339)})
	}
	slices.SortFunc(found, func(a, b report) int { return strings.Compare(b.time, a.time) })
	out := []wire.DrillSummary{}
	for _, r := range found {
		if len(out) == 50 {
			break
		}
		sum, err := s.readDrill(r.name)
		if err != nil {
			continue // being written, or not a report
		}
		sum.Scenario, sum.Time = r.scenario, r.time
		out = append(out, sum)
	}
	c.JSON(http.StatusOK, gin.H{"drills": out, "configured": true})
}

func (s *Server) readDrill(name string) (wire.DrillSummary, error) {
	path, err := s.drillFile(name, ".json")
	if err != nil {
		return wire.DrillSummary{}, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return wire.DrillSummary{}, err
	}
	var r struct {
		Failures []string `json:"failures"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return wire.DrillSummary{}, err
	}
	_, serr := os.Stat(strings.TrimSuffix(path, ".json") + ".svg")
	return wire.DrillSummary{Name: name, Passed: len(r.Failures) == 0, Failures: append([]string{}, r.Failures...), Timeline: serr == nil}, nil
}

func (s *Server) getDrill(c *gin.Context) {
	s.drillAsset(c, ".json", "application/json")
}

func (s *Server) drillTimeline(c *gin.Context) {
	s.drillAsset(c, ".svg", "image/svg+xml")
}

func (s *Server) drillAsset(c *gin.Context, ext, contentType string) {
	path, err := s.drillFile(c.Param("name"), ext)
	if err != nil {
		s.fail(c, err)
		return
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		c.JSON(http.StatusNotFound, wire.ErrorBody{Error: fmt.Sprintf("no drill report %s%s", c.Param("name"), ext), Code: "not_found"})
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	// A report is data, never a page: no script of an SVG runs here.
	c.Header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, contentType, b)
}
