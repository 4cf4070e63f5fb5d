package spec_test

// Linking testsupport gives this test binary the -update flag that every
// other package's tests accept (testsupport.Golden), so that
// `go test ./... -update` runs here too; spec itself has no golden files.
import _ "weir/internal/testsupport"
