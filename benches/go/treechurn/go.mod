module treechurn

go 1.19
