package fake

import (
	"math/rand/v2"
	"strconv"
)

// Generated names follow Docker's pattern, adjective_surname, with
// surnames of people who shaped computing and science.
var (
	adjectives = [...]string{
		"admiring", "bold", "brave", "clever", "dazzling", "eager",
		"elegant", "focused", "gallant", "happy", "jolly", "keen",
		"loving", "modest", "nifty", "optimistic", "patient", "quirky",
		"relaxed", "serene", "sharp", "tender", "upbeat", "vibrant",
		"wizardly", "youthful", "zealous",
	}
	surnames = [...]string{
		"allen", "babbage", "bartik", "curie", "dijkstra", "easley",
		"feynman", "goldberg", "hamilton", "hopper", "johnson", "knuth",
		"lamport", "liskov", "lovelace", "mccarthy", "noether", "pike",
		"ritchie", "shannon", "thompson", "turing", "vaughan", "wilkes",
		"wing", "yonath", "zuse",
	}
)

// generateName returns a name no container has. Call with rt.mu held.
func (rt *Runtime) generateName() string {
	for i := 0; ; i++ {
		name := adjectives[rand.IntN(len(adjectives))] + "_" + surnames[rand.IntN(len(surnames))]
		if i > 5 {
			name += strconv.Itoa(rand.IntN(10 * i))
		}
		if _, taken := rt.names[name]; !taken {
			return name
		}
	}
}
