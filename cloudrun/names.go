package cloudrun

import "github.com/gantryhq/gantry/internal/naming"

// jobPrefix starts the ID of every job gantry creates (see package naming
// for how a container's name becomes its job's ID).
const jobPrefix = "gantry-"

// jobIDForName returns the Cloud Run job ID of the container called name.
func jobIDForName(name string) string { return naming.ResourceForName(jobPrefix, name) }
