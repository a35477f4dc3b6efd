module msgbuf

go 1.19
