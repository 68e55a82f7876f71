package logsvc

import (
	"fmt"
	"net/url"
	"strings"
)

// parentKinds are the collections that own logs: a log name is
// PARENT/logs/LOG_ID with PARENT one of these followed by an ID.
var parentKinds = []string{"projects", "organizations", "billingAccounts", "folders"}

// maxLogIDLen is from LogEntry.log_name: "[LOG_ID] must be less than 512
// characters long".
const maxLogIDLen = 511

// parseLogName checks a log name as LogEntry.log_name documents it and
// returns its parent ("projects/P"). A leading '/' is removed, as the API
// does "for backward compatibility", and a project number is replaced by
// the project's ID, as "the project number is translated to its
// corresponding PROJECT_ID internally and the logName field will contain
// PROJECT_ID in queries and exports"; the returned name is the one to
// store.
func (s *Service) parseLogName(name string) (clean, parent string, err error) {
	clean = strings.TrimPrefix(name, "/")
	parts := strings.SplitN(clean, "/", 4)
	if len(parts) != 4 || !isParentKind(parts[0]) || parts[1] == "" || parts[2] != "logs" || parts[3] == "" {
		return "", "", fmt.Errorf("log name %q is not of the form projects/[PROJECT_ID]/logs/[LOG_ID] (or organizations/, billingAccounts/, folders/)", name)
	}
	rawID := parts[3]
	if strings.Contains(rawID, "/") {
		return "", "", fmt.Errorf("log name %q: the log ID must be URL-encoded (write '/' as %%2F)", name)
	}
	id, err := url.PathUnescape(rawID)
	if err != nil {
		return "", "", fmt.Errorf("log name %q: the log ID is not validly URL-encoded", name)
	}
	if len(id) > maxLogIDLen {
		return "", "", fmt.Errorf("log name %q: the log ID is %d characters long, it must be less than 512", name, len(id))
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '_' || c == '-' || c == '.') {
			return "", "", fmt.Errorf("log name %q: the log ID may only contain letters, digits, '/', '_', '-' and '.'", name)
		}
	}
	parent = s.canonicalParent(parts[0] + "/" + parts[1])
	return parent + "/logs/" + rawID, parent, nil
}

// canonicalParent names a project by its ID when the parent names it by a
// number the Service was given.
func (s *Service) canonicalParent(parent string) string {
	if n, ok := strings.CutPrefix(parent, "projects/"); ok {
		if id, ok := s.projectIDs[n]; ok {
			return "projects/" + id
		}
	}
	return parent
}

// consumer names a parent's project as Google's quota errors do: by
// number when the Service knows it.
func (s *Service) consumer(parent string) string {
	p := strings.TrimPrefix(parent, "projects/")
	if n, ok := s.projectNumbers[p]; ok {
		return n
	}
	return p
}

func isParentKind(s string) bool {
	for _, k := range parentKinds {
		if s == k {
			return true
		}
	}
	return false
}

// parseResourceName checks a ListLogEntries or TailLogEntries resource
// name and returns the parent whose entries it selects. Accepted, from
// ListLogEntriesRequest.resource_names: projects/P, organizations/O,
// billingAccounts/B, folders/F, and views
// PARENT/locations/L/buckets/B/views/V (every entry of the emulator lives
// in its parent's _Default bucket, so a view selects its parent's entries).
// A project number selects the project's entries.
func (s *Service) parseResourceName(name string) (string, error) {
	parts := strings.Split(name, "/")
	ok := len(parts) >= 2 && isParentKind(parts[0]) && parts[1] != ""
	switch {
	case !ok:
	case len(parts) == 2:
		return s.canonicalParent(name), nil
	case len(parts) == 8 && parts[2] == "locations" && parts[4] == "buckets" && parts[6] == "views" &&
		parts[3] != "" && parts[5] != "" && parts[7] != "":
		return s.canonicalParent(parts[0] + "/" + parts[1]), nil
	}
	return "", fmt.Errorf("resource name %q is not one of projects/[PROJECT_ID], organizations/[ORGANIZATION_ID], billingAccounts/[BILLING_ACCOUNT_ID], folders/[FOLDER_ID] or a log view [PARENT]/locations/[LOCATION_ID]/buckets/[BUCKET_ID]/views/[VIEW_ID]", name)
}
