build2/mail/header.o: src/mail/header.c src/mail/header.h src/core/buf.h
src/mail/header.h:
src/core/buf.h:
