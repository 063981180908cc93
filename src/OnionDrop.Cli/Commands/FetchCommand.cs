using System.CommandLine;

namespace OnionDrop.Cli.Commands;

public static class FetchCommand
{
    public static Command Create()
    {
        var command = new Command("fetch", "(not implemented yet)");
        command.SetAction(_ => { Console.Error.WriteLine("oniondrop fetch: not implemented yet"); return 70; });
        return command;
    }
}
