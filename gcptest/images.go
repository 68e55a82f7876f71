package gcptest

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// WithImageRegistry makes the Server pull the images whose reference
// names registry host (for example "127.0.0.1:5000", as
// go-containerregistry's in-memory registry serves), instead of taking
// the image as a name only. Such a container runs from its image as
// Cloud Run runs it: command replaces the image's ENTRYPOINT (and then
// its CMD is not used), args replace CMD, the image's ENV comes before
// the container's own variables (PATH excepted: the process runs on this
// host), and WORKDIR applies when working_dir is empty. The image's files
// are extracted once per digest and shown to the process through the
// runtime's mounts: each top-level entry of the image's root is bound
// at its path (see fake's path substitution), volumes taking precedence.
// A multi-platform image must include linux/amd64, as Cloud Run requires;
// the variant for this host's platform runs. opts (credentials, a
// transport) go to go-containerregistry's remote package. The option may
// be given once per registry.
func WithImageRegistry(host string, opts ...remote.Option) Option {
	return func(c *config) {
		if host == "" || strings.ContainsAny(host, "/@") {
			c.errs = append(c.errs, fmt.Errorf("gcptest: WithImageRegistry(%q): want a registry host such as 127.0.0.1:5000", host))
			return
		}
		if c.registries == nil {
			c.registries = map[string][]remote.Option{}
		}
		c.registries[host] = opts
	}
}

// pulledImage is an image extracted on this host.
type pulledImage struct {
	root   string // the image's root file system
	config v1.Config
}

// imageStore pulls the images of the registries given WithImageRegistry
// and keeps each one extracted, by digest, under dir.
type imageStore struct {
	registries map[string][]remote.Option
	dir        string

	mu     sync.Mutex
	pulled map[string]*pullOnce // by digest
}

type pullOnce struct {
	once sync.Once
	img  *pulledImage
	err  error
}

// imageError is an image that could not be pulled, in Cloud Run's words.
type imageError struct{ msg string }

func (e *imageError) Error() string { return e.msg }

// get returns the image ref names, pulled and extracted, or nil when ref
// names no registry the Server pulls from.
func (st *imageStore) get(ctx context.Context, ref string) (*pulledImage, error) {
	if len(st.registries) == 0 {
		return nil, nil
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, nil
	}
	opts, ok := st.registries[r.Context().RegistryStr()]
	if !ok {
		return nil, nil
	}
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	img, err := st.resolve(r, opts)
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
			return nil, &imageError{fmt.Sprintf("Image '%s' not found.", ref)}
		}
		return nil, &imageError{fmt.Sprintf("Image '%s' could not be pulled: %v", ref, err)}
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	st.mu.Lock()
	p := st.pulled[d.String()]
	if p == nil {
		p = &pullOnce{}
		st.pulled[d.String()] = p
	}
	st.mu.Unlock()
	p.once.Do(func() { p.img, p.err = st.extract(img, d) })
	return p.img, p.err
}

// resolve reads the image r names for this host's platform; an index
// must also hold linux/amd64, the platform Cloud Run runs.
func (st *imageStore) resolve(r name.Reference, opts []remote.Option) (v1.Image, error) {
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return nil, err
	}
	if !desc.MediaType.IsIndex() {
		return desc.Image()
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var amd64, here *v1.Descriptor
	for i, d := range m.Manifests {
		if d.Platform == nil || d.Platform.OS != "linux" {
			continue
		}
		if d.Platform.Architecture == "amd64" && amd64 == nil {
			amd64 = &m.Manifests[i]
		}
		if d.Platform.Architecture == runtime.GOARCH && here == nil {
			here = &m.Manifests[i]
		}
	}
	switch {
	case amd64 == nil:
		return nil, fmt.Errorf("the image's manifest list does not include linux/amd64")
	case here == nil:
		return nil, fmt.Errorf("the image has no linux/%s variant to run on this host", runtime.GOARCH)
	}
	return idx.Image(here.Digest)
}

// extract writes img's file system under the store's directory, once.
func (st *imageStore) extract(img v1.Image, d v1.Hash) (*pulledImage, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	root := filepath.Join(st.dir, d.Hex)
	tmp, err := os.MkdirTemp(st.dir, "pull-")
	if err != nil {
		return nil, err
	}
	rc := mutate.Extract(img)
	err = untar(rc, tmp)
	rc.Close()
	if err == nil {
		err = os.Rename(tmp, root)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("extract image %s: %w", d, err)
	}
	return &pulledImage{root: root, config: cf.Config}, nil
}

// untar writes a flattened image's tar stream under dir. Names are kept
// inside dir; links are written as they are, to be read inside the
// image's root.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		rel := path.Clean("/" + h.Name)
		if rel == "/" {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		mode := h.FileInfo().Mode().Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(dst, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			os.Remove(dst)
			if err := os.Symlink(h.Linkname, dst); err != nil {
				return err
			}
		case tar.TypeLink:
			target := filepath.Join(dir, filepath.FromSlash(path.Clean("/"+h.Linkname)))
			os.Remove(dst)
			if err := os.Link(target, dst); err != nil {
				return err
			}
		}
	}
}

// rootEntries are the directories and files of a pulled image's root
// that its container sees through mounts: every top-level entry but dev,
// proc and sys, which stay the host's.
func (p *pulledImage) rootEntries() ([]string, error) {
	es, err := os.ReadDir(p.root)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range es {
		switch e.Name() {
		case "dev", "proc", "sys":
			continue
		}
		names = append(names, e.Name())
	}
	return names, nil
}
