module cgcbench

go 1.19
