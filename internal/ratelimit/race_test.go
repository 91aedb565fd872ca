//go:build race

package ratelimit_test

import "time"

// raceSlack is the scheduling delay the race detector adds, on a busy two-core machine, to a
// goroutine woken by its deadline: measured up to ~12 ms.
const raceSlack = 20 * time.Millisecond
