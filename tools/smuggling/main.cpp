// molt-smuggle: runs the request-smuggling corpus (tools/smuggling/cases.cpp) against a proxy in
// front of molt-origin and prints one tab-separated line a case: name, category, the proxy's
// status, whether it closed, requests the origin parsed, the verdict and what molt must do.
//   molt-smuggle PROXY_PORT ORIGIN_PORT
#include <cstdio>
#include <cstdlib>

#include "tools/smuggling/probe.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: molt-smuggle PROXY_PORT ORIGIN_PORT\n");
    return 2;
  }
  auto proxy = static_cast<std::uint16_t>(std::atoi(argv[1]));
  auto origin = static_cast<std::uint16_t>(std::atoi(argv[2]));
  std::printf("case\tcategory\tstatus\tclosed\torigin_requests\tverdict\texpected\n");
  for (const auto& c : molt::smuggling::cases()) {
    auto o = molt::smuggling::probe(proxy, origin, c);
    std::printf("%s\t%s\t%d\t%s\t%u\t%s\t%s\n", c.name.c_str(), c.category.c_str(), o.status,
                o.closed ? "yes" : "no", o.requests, o.verdict.c_str(),
                c.reached == 0    ? "refused"
                : c.status >= 400 ? "cut off"
                                  : "forwarded");
    std::fflush(stdout);
  }
  return 0;
}
