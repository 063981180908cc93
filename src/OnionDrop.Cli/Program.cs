using System.CommandLine;
using OnionDrop.Cli;
using OnionDrop.Cli.Commands;

// `oniondrop`: one executable, one subcommand per job. Each command lives in Commands/ and returns its
// exit code: 0 on success, non-zero with one clear line on stderr otherwise.
ProcessHardening.KeepMemoryToItself();
var root = new RootCommand("OnionDrop: an onion-service drop box that seals every submission as it arrives.")
{
    ServeCommand.Create(),
    KeygenCommand.Create(),
    OpenCommand.Create(),
    PullCommand.Create(),
    FetchCommand.Create(),
    StatusCommand.Create(),
    CompactCommand.Create(),
    RecoverCommand.Create(),
};
var parse = root.Parse(args);
// A mistyped command line, like a bad configuration: one line and exit 2, not the whole help.
if (parse.Errors.Count > 0)
{
    var command = parse.CommandResult.Command;
    var name = command == root ? "oniondrop" : $"oniondrop {command.Name}";
    var reason = string.Join("; ", parse.Errors.Select(e =>
        string.Join(' ', e.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).TrimEnd('.')));
    Console.Error.WriteLine($"{name}: {reason} (see {name} --help)");
    return 2;
}
var invocation = new InvocationConfiguration
{
    // `serve` leaves SIGTERM/SIGINT to the host, which stops tor and marks the status file before exiting;
    // System.CommandLine would otherwise end the process two seconds after the signal.
    ProcessTerminationTimeout = parse.CommandResult.Command.Name == "serve" ? null : TimeSpan.FromSeconds(2),
    // A command's unexpected exception is still one line, never a stack trace.
    EnableDefaultExceptionHandler = false,
};
try
{
    return await parse.InvokeAsync(invocation);
}
catch (OperationCanceledException)
{
    Console.Error.WriteLine($"oniondrop {parse.CommandResult.Command.Name}: interrupted");
    return 130;
}
catch (Exception e)
{
    Console.Error.WriteLine($"oniondrop {parse.CommandResult.Command.Name}: {e.Message.Split('\n')[0].Trim()}");
    return 1;
}
