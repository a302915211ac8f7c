package version_test

import (
	"fmt"

	"github.com/patchline/patchline/reconciler/version"
)

func ExampleCompare() {
	// A Debian stable security build sorts before the unstable release.
	fmt.Println(version.Compare("apt", "3.0.15-1~deb12u1", "3.0.15-1"))
	// An epoch outweighs everything after it.
	fmt.Println(version.Compare("apt", "1:0.9", "2.0"))
	// winget versions compare segment by segment, numerically.
	fmt.Println(version.Compare("winget", "124.0.6367.118", "124.0.6367.91"))
	// Output:
	// -1
	// 1
	// 1
}
