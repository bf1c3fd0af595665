// test-cxx.cpp - the public header compiles as C++.
#include "gemma8.h"

int main() {
    gemma8_context_params p = gemma8_context_default_params();
    (void)p;
    return gemma8_status_str(GEMMA8_OK)[0] == 'o' ? 0 : 1;
}
