package gantry

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ListOptions selects containers for List. All conditions must match.
type ListOptions struct {
	// All includes containers that are not running, as docker ps -a.
	All bool
	// IDs keeps containers whose ID starts with one of these.
	IDs []string
	// Names keeps containers whose name matches one of these regular
	// expressions (Go's syntax), as docker ps --filter name= does: the
	// name is tried with and without Docker's leading "/", so "^web"
	// and "^/web" both find "web-1".
	Names []string
	// Labels keeps containers carrying every entry: "key" for presence,
	// "key=value" for an exact value.
	Labels []string
	// Status keeps containers in one of these states. Setting it implies
	// All.
	Status []Status
	// Image keeps containers made from this image reference. References
	// are compared as Docker normalises them, so "busybox",
	// "busybox:latest" and "docker.io/library/busybox:latest" are one
	// image.
	Image string
	// Limit, when positive, returns at most this many (the newest). As
	// docker ps -n, it implies All.
	Limit int
}

// Validate reports malformed ListOptions as ErrInvalidArgument.
func (o ListOptions) Validate() error {
	_, err := o.compile()
	return err
}

// listFilter is ListOptions ready to match: regular expressions compiled,
// label filters split, the image normalised.
type listFilter struct {
	o      *ListOptions
	names  []*regexp.Regexp
	labels []labelFilter
	image  string
}

type labelFilter struct {
	key, value string
	hasValue   bool
}

func (o *ListOptions) compile() (*listFilter, error) {
	v := validator{}
	f := &listFilter{o: o}
	if o.Limit < 0 {
		v.fail("Limit", strconv.Itoa(o.Limit), "must not be negative")
	}
	for i, n := range o.Names {
		re, err := regexp.Compile(n)
		if err != nil {
			v.fail(fmt.Sprintf("Names[%d]", i), n, "not a regular expression: "+err.Error())
			continue
		}
		f.names = append(f.names, re)
	}
	for i, l := range o.Labels {
		k, val, ok := strings.Cut(l, "=")
		if k == "" {
			v.fail(fmt.Sprintf("Labels[%d]", i), l, `want "key" or "key=value"`)
		}
		f.labels = append(f.labels, labelFilter{k, val, ok})
	}
	for i, s := range o.Status {
		if !s.valid() {
			v.fail(fmt.Sprintf("Status[%d]", i), string(s), "not a container status")
		}
	}
	if o.Image != "" {
		img, err := NormalizeImage(o.Image)
		if err != nil {
			fe := err.(*FieldError)
			v.fail("Image", o.Image, fe.Reason)
		}
		f.image = img
	}
	if v.err != nil {
		return nil, v.err
	}
	return f, nil
}

func (s Status) valid() bool {
	switch s {
	case StatusCreated, StatusRunning, StatusPaused, StatusRestarting, StatusRemoving, StatusExited, StatusDead:
		return true
	}
	return false
}

// match reports whether c passes every filter but Limit. As in moby's
// list, a container that is not running is listed only with All, a
// Status filter or a Limit.
func (f *listFilter) match(c *Container) bool {
	o := f.o
	if !o.All && len(o.Status) == 0 && o.Limit <= 0 && !c.State.Running {
		return false
	}
	if len(o.Status) > 0 && !slices.Contains(o.Status, c.State.Status) {
		return false
	}
	if len(o.IDs) > 0 && !slices.ContainsFunc(o.IDs, func(p string) bool { return strings.HasPrefix(c.ID, p) }) {
		return false
	}
	if len(f.names) > 0 && !slices.ContainsFunc(f.names, func(re *regexp.Regexp) bool {
		return re.MatchString(c.Name) || re.MatchString("/"+c.Name)
	}) {
		return false
	}
	for _, l := range f.labels {
		v, ok := c.Labels[l.key]
		if !ok || (l.hasValue && v != l.value) {
			return false
		}
	}
	if f.image != "" {
		img, err := NormalizeImage(c.Image)
		if err != nil || img != f.image {
			return false
		}
	}
	return true
}

// SelectContainers applies opts to candidates the way List does on every
// backend: it checks opts, keeps the containers that match, orders them
// newest first (by Created, then by ID for a stable order) and cuts the
// list at opts.Limit. A backend's List is a call to it. complete, when
// not nil, is called for each container kept, after the limit, to fill in
// what filtering did not need.
func SelectContainers(opts ListOptions, candidates []*Container, complete func(*Container) (*Container, error)) ([]*Container, error) {
	f, err := opts.compile()
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, c := range candidates {
		if f.match(c) {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b *Container) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if opts.Limit > 0 && len(out) > opts.Limit {
		out = out[:opts.Limit]
	}
	if complete != nil {
		for i, c := range out {
			if out[i], err = complete(c); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
