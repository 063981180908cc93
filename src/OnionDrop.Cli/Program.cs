using System.CommandLine;
using OnionDrop.Cli.Commands;

// `oniondrop`: one executable, one subcommand per job. Each command lives in Commands/ and returns its
// exit code: 0 on success, non-zero with one clear line on stderr otherwise.
var root = new RootCommand("OnionDrop: an onion-service drop box that seals every submission as it arrives.")
{
    ServeCommand.Create(),
    KeygenCommand.Create(),
    OpenCommand.Create(),
    PullCommand.Create(),
    FetchCommand.Create(),
    StatusCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
