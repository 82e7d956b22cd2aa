package consulcompat

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// filterExpr is the part of Consul's filter language (go-bexpr) that
// service discovery uses: clauses joined by "and", each one of
//
//	Selector == "v"        Selector != "v"
//	Selector contains "v"  Selector not contains "v"
//	"v" in Selector        "v" not in Selector
//	Selector is empty      Selector is not empty
//
// Anything else (or, parentheses, matches) is refused with a clear error
// rather than evaluated wrongly.
type filterExpr struct{ clauses []clause }

type clause struct {
	sel    []string // selector path, e.g. Service, Meta, version
	op     string   // ==, !=, contains, in, empty
	negate bool
	value  string
}

func tokenize(s string) ([]string, error) {
	var out []string
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '"' || c == '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c == '"' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			v := s[i : j+1]
			if c == '"' {
				u, err := strconv.Unquote(v)
				if err != nil {
					return nil, fmt.Errorf("bad string %s", v)
				}
				v = u
			} else {
				v = v[1 : len(v)-1]
			}
			out = append(out, "\x00"+v) // a quoted value
			i = j + 1
		case c == '(' || c == ')':
			return nil, fmt.Errorf("parentheses are not supported; join clauses with and")
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '\n' && s[j] != '"' {
				j++
			}
			out = append(out, s[i:j])
			i = j
		}
	}
	return out, nil
}

func parseFilter(s string) (*filterExpr, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	e := &filterExpr{}
	for len(toks) > 0 {
		end := slices.IndexFunc(toks, func(t string) bool { return t == "and" || t == "or" })
		if end >= 0 && toks[end] == "or" {
			return nil, fmt.Errorf("or is not supported; only clauses joined by and")
		}
		part := toks
		if end >= 0 {
			part, toks = toks[:end], toks[end+1:]
			if len(toks) == 0 {
				return nil, fmt.Errorf("nothing after and")
			}
		} else {
			toks = nil
		}
		c, err := parseClause(part)
		if err != nil {
			return nil, err
		}
		e.clauses = append(e.clauses, c)
	}
	if len(e.clauses) == 0 {
		return nil, fmt.Errorf("empty filter")
	}
	return e, nil
}

func value(t string) string { return strings.TrimPrefix(t, "\x00") }

func selector(t string) ([]string, error) {
	if strings.HasPrefix(t, "\x00") || t == "" {
		return nil, fmt.Errorf("expected a selector, got %q", value(t))
	}
	return strings.Split(t, "."), nil
}

func parseClause(t []string) (clause, error) {
	bad := func() (clause, error) {
		return clause{}, fmt.Errorf("unsupported clause %q", strings.Join(slices.Collect(func(yield func(string) bool) {
			for _, x := range t {
				if !yield(value(x)) {
					return
				}
			}
		}), " "))
	}
	var c clause
	var err error
	switch {
	case len(t) == 3 && (t[1] == "==" || t[1] == "!="):
		c.op, c.negate, c.value = "==", t[1] == "!=", value(t[2])
		c.sel, err = selector(t[0])
	case len(t) == 3 && t[1] == "contains", len(t) == 4 && t[1] == "not" && t[2] == "contains":
		c.op, c.negate, c.value = "contains", len(t) == 4, value(t[len(t)-1])
		c.sel, err = selector(t[0])
	case len(t) == 3 && t[1] == "in", len(t) == 4 && t[1] == "not" && t[2] == "in":
		c.op, c.negate, c.value = "contains", len(t) == 4, value(t[0])
		c.sel, err = selector(t[len(t)-1])
	case len(t) == 3 && t[1] == "is" && t[2] == "empty", len(t) == 4 && t[1] == "is" && t[2] == "not" && t[3] == "empty":
		c.op, c.negate = "empty", len(t) == 4
		c.sel, err = selector(t[0])
	default:
		return bad()
	}
	if err != nil {
		return c, err
	}
	if _, ok := resolve(c.sel, view{}, nil, true); !ok {
		return c, fmt.Errorf("unknown selector %q", strings.Join(c.sel, "."))
	}
	return c, nil
}

// resolve gives a selector's values for an instance (check only: whether
// the selector is known).
func resolve(sel []string, v view, checks []healthCheck, check bool) ([]string, bool) {
	one := func(f func() string) ([]string, bool) {
		if check {
			return nil, true
		}
		return []string{f()}, true
	}
	many := func(f func() []string) ([]string, bool) {
		if check {
			return nil, true
		}
		return f(), true
	}
	meta := func(m func() map[string]string, key string) ([]string, bool) {
		if check {
			return nil, true
		}
		if val, ok := m()[key]; ok {
			return []string{val}, true
		}
		return []string{}, true
	}
	path := strings.Join(sel, ".")
	switch {
	case path == "Service.ID" || path == "ServiceID":
		return one(func() string { return v.in.ID })
	case path == "Service.Service" || path == "ServiceName":
		return one(func() string { return v.in.Service })
	case path == "Service.Address" || path == "ServiceAddress" || path == "Node.Address" || path == "Address":
		return one(func() string { return v.in.Address })
	case path == "Service.Port" || path == "ServicePort":
		return one(func() string { return strconv.Itoa(v.in.Port) })
	case path == "Service.Tags" || path == "ServiceTags":
		return many(func() []string { return v.in.Tags })
	case len(sel) >= 3 && sel[0] == "Service" && sel[1] == "Meta":
		return meta(v.meta, strings.Join(sel[2:], "."))
	case len(sel) >= 2 && sel[0] == "ServiceMeta":
		return meta(v.meta, strings.Join(sel[1:], "."))
	case path == "Node" || path == "Node.Node":
		return one(v.nodeName)
	case path == "Node.Datacenter" || path == "Datacenter":
		return one(func() string { return v.dc })
	case len(sel) >= 3 && sel[0] == "Node" && sel[1] == "Meta":
		return meta(func() map[string]string { return v.node().Meta }, strings.Join(sel[2:], "."))
	case len(sel) >= 2 && sel[0] == "NodeMeta":
		return meta(func() map[string]string { return v.node().Meta }, strings.Join(sel[1:], "."))
	case path == "Checks.Status" || path == "Checks.CheckID" || path == "Checks.Name" || path == "Checks.Type":
		return many(func() []string {
			var out []string
			for _, c := range checks {
				out = append(out, map[string]string{"Status": c.Status, "CheckID": c.CheckID, "Name": c.Name, "Type": c.Type}[sel[1]])
			}
			return out
		})
	}
	return nil, false
}

// canonical renders the expression in one spelling, its clauses sorted
// and without repeats ("and" is commutative and idempotent): two filters
// that select the same way read the same.
func (e *filterExpr) canonical() string {
	parts := make([]string, 0, len(e.clauses))
	for _, c := range e.clauses {
		op := c.op
		if c.negate {
			op = "not " + op
		}
		parts = append(parts, strings.Join(c.sel, ".")+" "+op+" "+strconv.Quote(c.value))
	}
	slices.Sort(parts)
	return strings.Join(slices.Compact(parts), " and ")
}

func (e *filterExpr) match(v view, checks []healthCheck) bool {
	for _, c := range e.clauses {
		vals, _ := resolve(c.sel, v, checks, false)
		var ok bool
		switch c.op {
		case "==":
			ok = len(vals) > 0 && slices.Contains(vals, c.value)
		case "contains":
			ok = slices.Contains(vals, c.value)
		case "empty":
			ok = len(vals) == 0 || (len(vals) == 1 && vals[0] == "")
		}
		if ok == c.negate {
			return false
		}
	}
	return true
}
