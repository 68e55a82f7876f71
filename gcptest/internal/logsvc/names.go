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
// does "for backward compatibility"; the returned name is the one to store.
func parseLogName(name string) (clean, parent string, err error) {
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
	return clean, parts[0] + "/" + parts[1], nil
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
func parseResourceName(name string) (string, error) {
	parts := strings.Split(name, "/")
	ok := len(parts) >= 2 && isParentKind(parts[0]) && parts[1] != ""
	switch {
	case !ok:
	case len(parts) == 2:
		return name, nil
	case len(parts) == 8 && parts[2] == "locations" && parts[4] == "buckets" && parts[6] == "views" &&
		parts[3] != "" && parts[5] != "" && parts[7] != "":
		return parts[0] + "/" + parts[1], nil
	}
	return "", fmt.Errorf("resource name %q is not one of projects/[PROJECT_ID], organizations/[ORGANIZATION_ID], billingAccounts/[BILLING_ACCOUNT_ID], folders/[FOLDER_ID] or a log view [PARENT]/locations/[LOCATION_ID]/buckets/[BUCKET_ID]/views/[VIEW_ID]", name)
}
