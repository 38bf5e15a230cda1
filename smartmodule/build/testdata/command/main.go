// Command command is an ordinary Go program: it compiles for wasip1 but
// exports no SmartModule function.
package main

func main() {}
