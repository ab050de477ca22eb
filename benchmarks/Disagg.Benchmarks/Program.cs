using BenchmarkDotNet.Running;

// Run all:     dotnet run -c Release --project benchmarks/Disagg.Benchmarks -- --filter '*'
// Run a class: dotnet run -c Release --project benchmarks/Disagg.Benchmarks -- --filter '*Allocator*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
