// Test support: ports for servers that tests start on 127.0.0.1.
#ifndef SAE_TESTS_SUPPORT_PORTS_H_
#define SAE_TESTS_SUPPORT_PORTS_H_

namespace sae::support {

// A port on 127.0.0.1 that was free a moment ago (another process may take it before use), or
// -1. A server that can listen on port 0 and report the port it got is better: this is for
// those that cannot.
int FreeLoopbackPort();

}  // namespace sae::support

#endif  // SAE_TESTS_SUPPORT_PORTS_H_
