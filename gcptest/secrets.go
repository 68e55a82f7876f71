package gcptest

import (
	"fmt"
	"regexp"
	"strconv"
)

// WithSecret gives the Server a Secret Manager secret version, so that an
// environment variable of a task whose value_source.secret_key_ref names
// it receives value.
//
// name is a secret ID ("api-key"), which stands for the secret of that ID
// in every project, or a full name ("projects/p/secrets/api-key"), which
// only that project's jobs can read; a reference by ID alone resolves in
// the job's project, as Cloud Run resolves it. version is a version number
// ("3") or "latest". A reference to "latest" (or to no version) reads the
// version given as "latest" if there is one, else the highest numbered
// one. A task that refers to a secret or version the Server was not given
// does not start (see RULES.md). A bad name or version makes NewServer
// fail.
func WithSecret(name, version, value string) Option {
	return func(c *config) {
		c.secrets = append(c.secrets, secretVersion{name: name, version: version, value: value})
	}
}

// secretVersion is one WithSecret.
type secretVersion struct{ name, version, value string }

// secretIDRe is Secret Manager's rule for secret IDs.
var secretIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

// anyProject is the project of a secret given by ID alone.
const anyProject = ""

type secretKey struct{ project, id string }

// secretValues are the versions of one secret.
type secretValues struct {
	// latest is the value given as "latest", if any.
	latest *string
	// numbered holds the values given by version number.
	numbered map[int]string
}

// secrets resolves secret references. It is filled by NewServer and only
// read afterwards.
type secrets map[secretKey]*secretValues

// newSecrets checks and stores the secrets given to NewServer.
func newSecrets(given []secretVersion) (secrets, error) {
	ss := secrets{}
	for _, g := range given {
		key, ok := parseSecretName(g.name, anyProject)
		if !ok {
			return nil, fmt.Errorf("gcptest: WithSecret(%q): want a secret ID or projects/{project}/secrets/{secret}", g.name)
		}
		sv := ss[key]
		if sv == nil {
			sv = &secretValues{numbered: map[int]string{}}
			ss[key] = sv
		}
		if g.version == "latest" {
			sv.latest = &g.value
			continue
		}
		n, err := strconv.Atoi(g.version)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("gcptest: WithSecret(%q, %q): the version must be \"latest\" or a number from 1", g.name, g.version)
		}
		sv.numbered[n] = g.value
	}
	return ss, nil
}

// parseSecretName reads a secret ID, which belongs to project, or a full
// secret name.
func parseSecretName(name, project string) (secretKey, bool) {
	if v, ok := parseName(name, "projects", "secrets"); ok {
		return secretKey{v[0], v[1]}, secretIDRe.MatchString(v[1])
	}
	return secretKey{project, name}, secretIDRe.MatchString(name)
}

// resolve returns the value of version of the secret name, as read by a
// job of project, or an error that names the missing secret or version.
func (ss secrets) resolve(project, name, version string) (string, error) {
	key, ok := parseSecretName(name, project)
	if !ok {
		return "", fmt.Errorf("secret %q is not a secret ID or projects/{project}/secrets/{secret}", name)
	}
	full := "projects/" + key.project + "/secrets/" + key.id
	sv := ss[key]
	if sv == nil {
		sv = ss[secretKey{anyProject, key.id}]
	}
	if sv == nil {
		return "", fmt.Errorf("secret %s not found or has no versions", full)
	}
	if version == "" || version == "latest" {
		if sv.latest != nil {
			return *sv.latest, nil
		}
		// A secret is only stored with a version, so without a "latest"
		// it has a numbered one.
		best := 0
		for n := range sv.numbered {
			best = max(best, n)
		}
		return sv.numbered[best], nil
	}
	n, err := strconv.Atoi(version)
	if v, ok := sv.numbered[n]; err == nil && ok {
		return v, nil
	}
	return "", fmt.Errorf("secret version %s/versions/%s not found", full, version)
}
