build2/tests/test_header: tests/unit/test_header.c src/mail/header.h \
 src/core/buf.h tests/unit/header_ref.h tests/unit/unit.h
src/mail/header.h:
src/core/buf.h:
tests/unit/header_ref.h:
tests/unit/unit.h:
